#!/bin/sh
# SeaweedFS all-in-one for compose: writes the S3 identity from the env file, then runs
# master + volume + filer + S3 gateway in one process. Data lives in the /data volume.
set -eu
: "${S3_ACCESS_KEY_ID:?S3_ACCESS_KEY_ID must be set in deploy/compose/vantus.env}"
: "${S3_SECRET_ACCESS_KEY:?S3_SECRET_ACCESS_KEY must be set in deploy/compose/vantus.env}"

umask 077
mkdir -p /etc/seaweedfs
cat >/etc/seaweedfs/s3.json <<JSON
{
  "identities": [
    {
      "name": "vantus",
      "credentials": [{"accessKey": "$S3_ACCESS_KEY_ID", "secretKey": "$S3_SECRET_ACCESS_KEY"}],
      "actions": ["Admin", "Read", "List", "Tagging", "Write"]
    }
  ]
}
JSON

exec weed server -dir=/data -ip=objectstore -ip.bind=0.0.0.0 \
  -master.volumeSizeLimitMB=1024 -volume.max=0 \
  -filer -s3 -s3.port=8333 -s3.config=/etc/seaweedfs/s3.json
