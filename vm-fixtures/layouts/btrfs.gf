part-disk /dev/sda mbr
mkfs btrfs /dev/sda1 label:fedora
mount /dev/sda1 /
btrfs-subvolume-create /root
btrfs-subvolume-create /home
btrfs-subvolume-create /srv
umount /
mount btrfsvol:/dev/sda1/root /
mkdir-p /home
mkdir-p /srv
mkdir-p /bin
mount btrfsvol:/dev/sda1/home /home
mount btrfsvol:/dev/sda1/srv /srv
tar-in %tar:common% /
tar-in %tar:btrfs/root% /
tar-in %tar:btrfs/home% /home
tar-in %tar:btrfs/srv% /srv
chown 1000 1000 /home/alice
chown 1000 1000 /home/alice/.bash_history
