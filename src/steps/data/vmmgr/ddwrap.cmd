@echo off
C:\vmmgr\dd.exe --list 2>&1
