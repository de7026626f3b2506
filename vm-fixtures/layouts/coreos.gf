part-init /dev/sda gpt
part-add /dev/sda p 2048 524287
part-add /dev/sda p 524288 -64
mkfs ext4 /dev/sda1 label:ROOT
mkfs ext4 /dev/sda2 label:USR-A
mount /dev/sda1 /
tar-in %tar:common% /
rm /etc/hosts
tar-in %tar:coreos/root% /
mkdir-p /usr
mkdir-p /root
ln-s ../usr/share/coreos/os-release /etc/os-release
ln-s ../usr/share/coreos/lsb-release /etc/lsb-release
mount /dev/sda2 /usr
tar-in %tar:coreos/usr% /usr
mkdir-p /usr/bin
mkdir-p /usr/local
ln-s ../share/coreos/os-release /usr/lib/os-release
