#!/bin/sh
# Makes the compose deployment's secrets once (32 random bytes as hex each); keeps any
# that exist, so that tokens and query codes already handed out stay valid.
set -eu
cd "$(dirname "$0")"
mkdir -p secrets
chmod 700 secrets
for name in jwt query-code console-link; do
    file="secrets/$name.secret"
    if [ ! -s "$file" ]; then
        od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$file"
        chmod 644 "$file"   # read by the containers' user (10001)
        echo "made $file"
    fi
done
