ssh bob@db01
exit
