# disks: 2
# Root on the first disk; /var on a logical volume of a volume group spread over both
# disks (the second disk added later to grow /var), so /var's extents are on each.
part-init /dev/sda mbr
part-add /dev/sda p 2048 1050623
part-add /dev/sda p 1050624 -2048
part-disk /dev/sdb mbr
pvcreate /dev/sda2
pvcreate /dev/sdb1
vgcreate vgdata "/dev/sda2 /dev/sdb1"
lvcreate var vgdata 900
mkfs ext4 /dev/sda1
set-uuid /dev/sda1 7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e
mkfs ext4 /dev/vgdata/var
mount /dev/sda1 /
mkdir-p /var
mount /dev/vgdata/var /var
mkdir-p /bin
tar-in %tar:common% /
tar-in %tar:vg-two-disks% /
