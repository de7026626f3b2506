cat /etc/shadow
reboot
