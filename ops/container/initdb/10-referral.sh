#!/bin/sh
# First start of the database container only (an empty volume): the application's role,
# database and schema. The superuser stays for administration; the services log in as `referral`.
set -eu
password=$(cat /run/secrets/db_password)
psql -v ON_ERROR_STOP=1 -v password="$password" --username "$POSTGRES_USER" --dbname postgres <<'SQL'
CREATE ROLE referral LOGIN PASSWORD :'password';
CREATE DATABASE referral OWNER referral;
\connect referral
CREATE SCHEMA referral AUTHORIZATION referral;
SQL
