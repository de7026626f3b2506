part-disk /dev/sda mbr
pvcreate /dev/sda1
vgcreate vg0 /dev/sda1
lvcreate root vg0 500
debug sh "printf %s %key% | cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 /dev/vg0/root -"
debug sh "printf %s %key% | cryptsetup open --key-file=- /dev/vg0/root cryptroot"
mkfs ext4 /dev/mapper/cryptroot
set-uuid /dev/mapper/cryptroot 5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9
mount /dev/mapper/cryptroot /
mkdir-p /bin
tar-in %tar:common% /
tar-in %tar:luks-lv% /
