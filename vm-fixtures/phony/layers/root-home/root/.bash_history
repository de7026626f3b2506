ip a
cat /var/lib/dhcp/dhclient.eth0.leases
systemctl restart ssh
passwd alice
mysql -uroot -pS3cr3tRootPw!
journalctl -xe
echo "${hostname}" > /etc/hostname
poweroff
