# disks: 2
# A two-disk MD RAID1 (as a Debian installer's "software RAID" makes it): one partition
# per disk, both members of md0, ext4 on the array, fstab by UUID.
part-disk /dev/sda mbr
part-disk /dev/sdb mbr
md-create md0 "/dev/sda1 /dev/sdb1" level:raid1
mkfs ext4 /dev/md/md0
set-uuid /dev/md/md0 6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d
mount /dev/md/md0 /
mkdir-p /bin
tar-in %tar:common% /
tar-in %tar:md-raid1% /
