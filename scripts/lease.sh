#!/usr/bin/env bash
# The former name of scripts/remote_run.sh (LEASE_SECONDS and LEASE_PROFILE still work there).
exec bash "$(dirname "$0")/remote_run.sh" "$@"
