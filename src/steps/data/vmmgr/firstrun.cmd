@echo off
powershell.exe C:\vmmgr\firstrun.ps1 >NUL
