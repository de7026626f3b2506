ssh alice@build-host
cat ~/.ssh/id_ed25519
