part-disk /dev/sda mbr
mkfs ext4 /dev/sda1
set-uuid /dev/sda1 3f1e0c2a-5b7d-4e9f-8a1b-2c3d4e5f6a7b
mount /dev/sda1 /
mkdir-p /bin
tar-in %tar:common% /
tar-in %tar:arch% /
