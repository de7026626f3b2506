part-disk /dev/sda mbr
mkfs ext4 /dev/sda1 label:fedora-root
mount /dev/sda1 /
mkdir-p /bin
tar-in %tar:common% /
tar-in %tar:fedora-release% /
