#!/usr/bin/env bash
# Makes a throwaway PKI for the security tests in DIR (openssl):
#   ca.pem, ca.key                 a CA
#   server.pem, server.key         the broker's certificate (127.0.0.1, localhost), signed by the CA
#   client-<role>.pem/.key         a client certificate with CN=<role> for each ROLE given, signed by the CA
#   rogue-ca.pem, rogue-client.*   a CA the broker does not trust, and a client certificate it signed
# Usage: make-pki.sh DIR [ROLE...]
set -euo pipefail
dir=$1
shift
mkdir -p "$dir"
cd "$dir"
days=2
quiet() { "$@" >/dev/null 2>&1 || { echo "make-pki: failed: $*" >&2; "$@"; }; }

quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days $days \
    -keyout ca.key -out ca.pem -subj "/CN=polyport-test-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

sign() { # name subject extensions [ca]
    local name=$1 subject=$2 ext=$3 ca=${4:-ca}
    quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subject"
    printf '%s\n' "$ext" > "$name.ext"
    quiet openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" -CAcreateserial -days $days \
        -out "$name.pem" -extfile "$name.ext"
    rm -f "$name.csr" "$name.ext"
}

sign server "/CN=localhost" "subjectAltName=IP:127.0.0.1,DNS:localhost
basicConstraints=CA:FALSE
extendedKeyUsage=serverAuth"
for role in "$@"; do
    sign "client-$role" "/CN=$role" "basicConstraints=CA:FALSE
extendedKeyUsage=clientAuth"
done

quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days $days \
    -keyout rogue-ca.key -out rogue-ca.pem -subj "/CN=rogue-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
sign rogue-client "/CN=admin" "basicConstraints=CA:FALSE
extendedKeyUsage=clientAuth" rogue-ca
