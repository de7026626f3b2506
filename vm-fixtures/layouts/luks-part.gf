part-disk /dev/sda mbr
debug sh "printf %s %key% | cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 /dev/sda1 -"
debug sh "printf %s %key% | cryptsetup open --key-file=- /dev/sda1 cryptroot"
pvcreate /dev/mapper/cryptroot
vgcreate cryptvg /dev/mapper/cryptroot
lvcreate root cryptvg 500
mkfs ext4 /dev/cryptvg/root label:crypt-root
mount /dev/cryptvg/root /
mkdir-p /bin
tar-in %tar:common% /
tar-in %tar:luks-part% /
