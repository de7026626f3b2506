@echo off
rem goldify's initial setup script for a VMmanager Windows template.
rem VMmanager fills in its macros and hands this file to the new VM on a small extra
rem disk; C:\vmmgr\firstrun.ps1 reads it from there at first boot and runs it once.
rem A recipe may give its own script instead (publish: vmmanager-windows: install_script).

rem The administrator's password.
net user Administrator "($PASS)"

rem The first network adapter that is up gets the VM's address.
set IFACE=
for /f "usebackq tokens=*" %%i in (`powershell -NoProfile -Command "(Get-NetAdapter | Where-Object Status -eq 'Up' | Sort-Object ifIndex | Select-Object -First 1).Name"`) do set "IFACE=%%i"
if "%IFACE%"=="" set "IFACE=Ethernet"
netsh interface ipv4 set address name="%IFACE%" source=static address=($IP) mask=($NETMASK) gateway=($GATEWAY)
netsh interface ipv4 set dnsservers name="%IFACE%" source=static address=($NAMESERVER) register=primary validate=no
for %%d in (($NAMESERVERS)) do if not "%%d"=="($NAMESERVER)" netsh interface ipv4 add dnsservers name="%IFACE%" address=%%d validate=no

rem A next hop outside the VM's own network (VMmanager's routed setups).
if not "($NEXTHOPIPv4)"=="" route -p add 0.0.0.0 mask 0.0.0.0 ($NEXTHOPIPv4)

rem The product key, when the template was given one.
if not "($PRODUCTKEY)"=="" cscript //nologo %SystemRoot%\System32\slmgr.vbs /ipk ($PRODUCTKEY)
if not "($PRODUCTKEY)"=="" cscript //nologo %SystemRoot%\System32\slmgr.vbs /ato
