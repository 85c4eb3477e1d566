#!/bin/sh
# Creates the secret files compose.yaml mounts, once, in docker/secrets/. Existing files are
# kept, so running it again changes nothing.
#
# The directory is yours alone (0700). The files in it are 0644 because compose mounts each
# file into its container with the host's owner and mode, and the service runs there as an
# unprivileged user of its own (uid 10001), which must be able to read them.
set -eu
cd "$(dirname "$0")"
mkdir -p secrets
chmod 700 secrets
umask 022
write() { [ -s "secrets/$1" ] || printf '%s\n' "$2" >"secrets/$1"; }
write postgres_password "$(openssl rand -hex 24)"
password=$(cat secrets/postgres_password)
write database_url "postgresql://feerecon:$password@postgres:5432/feerecon"
write sandbox_database_url "postgresql://feerecon:$password@postgres:5432/feerecon_sandbox"
write partner_secret_bth "whsec_$(openssl rand -base64 32)"
write notify_secrets "whsec_$(openssl rand -base64 32)"
echo "secrets in $(pwd)/secrets"
