# VMmanager's first-run setup, installed by goldify's vmmgr-firstrun step. The task
# vmmgr_firstrun runs it through firstrun.cmd at every startup. VMmanager hands a new VM its
# initial setup script (windows.cmd, macros filled) on an extra disk of exactly 1048576
# bytes: dd.exe lists the disks (ddwrap.cmd joins its two outputs), the one of that size is
# read into C:\vmmgr\windows.cmd and run. Without such a disk (later boots) nothing happens.
$ddout = C:\vmmgr\ddwrap.cmd
$ddout
$list = $ddout | select-string "size is 1048576 bytes" -Context 3,0
if (-not $list) { exit 0 }
$device = $null
foreach ($line in $list[0].Context.PreContext) {
    if ($line -match '^\\\\\?\\Device\\Harddisk\d+\\Partition0') { $device = $matches[0] }
}
if (-not $device) { exit 0 }
C:\vmmgr\dd.exe "if=$device" of=C:\vmmgr\windows.raw bs=1M count=1
$text = [System.IO.File]::ReadAllText('C:\vmmgr\windows.raw').TrimEnd([char]0)
[System.IO.File]::WriteAllText('C:\vmmgr\windows.cmd', $text)
Remove-Item C:\vmmgr\windows.raw
cmd.exe /c C:\vmmgr\windows.cmd
