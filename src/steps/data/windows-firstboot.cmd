@echo off
rem goldify's first-boot runner for Windows, started once by the goldify-firstboot service
rem (rhsrvany). It runs each script in scripts\ once, in name order, moves those that
rem succeeded to scripts-done\, logs to log.txt, then uninstalls the service.
rem A script that exits with code 249 stays and is retried at the next boot.
setlocal EnableDelayedExpansion
set "firstboot=%~dp0"
set "firstboot=%firstboot:~0,-1%"
set "log=%firstboot%\log.txt"
call :main >> "%log%" 2>&1
exit /b

:main
echo goldify first boot: %DATE% %TIME%
if not exist "%firstboot%\scripts-done" mkdir "%firstboot%\scripts-done"
for %%f in ("%firstboot%\scripts\*.cmd") do (
  echo running %%~nxf
  pushd "%firstboot%\scripts"
  call "%%f"
  set elvl=!errorlevel!
  popd
  echo .... exit code !elvl!
  if !elvl! EQU 249 (
    echo %%~nxf failed; it runs again at the next boot
    exit /b
  )
  move "%%f" "%firstboot%\scripts-done"
)
type nul > "%firstboot%\complete"
echo uninstalling the goldify-firstboot service
"%firstboot%\rhsrvany.exe" -s goldify-firstboot uninstall
