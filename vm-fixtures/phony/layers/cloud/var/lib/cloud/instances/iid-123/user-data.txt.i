Content-Type: multipart/mixed; boundary="===============5187392917045328450=="
MIME-Version: 1.0
Number-Attachments: 1

--===============5187392917045328450==
Content-Type: text/cloud-config

#cloud-config
hostname: ${hostname}
--===============5187392917045328450==--
