sudo apt update
sudo apt install -y postgresql-client
psql -h db.internal -U app -W
export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
ssh deploy@10.20.30.40
vim ~/.ssh/config
history | grep psql
exit
