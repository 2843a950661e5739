#!/usr/bin/env bash
# Joins this host to the WrenCOS Ray cluster with the resources of its role, and on gateway hosts
# (re)starts the gateway service. Used by deploy/ray_cluster.onprem.yaml; usage: node-start.sh HEAD_IP
set -euo pipefail
head_ip="$1"
here="$(cd "$(dirname "$0")" && pwd)"
venv="$HOME/venv"
ip="$(hostname -I | awk '{print $1}')"
role="$(awk -v ip="$ip" '$1 == ip {print $2}' "$here/onprem-roles.txt")"
case "$role" in
  gateway) resources='{"gateway": 1}' ;;
  stream)  resources='{"stream": 100}' ;;  # one unit per live stream: about 64 MiB each
  *) echo "error: $ip has no role in $here/onprem-roles.txt: add '$ip gateway' or '$ip stream'" >&2; exit 1 ;;
esac
"$venv/bin/ray" stop || true
set -a; . "$here/ray-ft.env"; set +a  # GCS fault tolerance and health-check settings (README "When the head dies")
RAY_AUTH_MODE=token RAY_task_events_report_interval_ms=0 "$venv/bin/ray" start --address="$head_ip:6379" --resources="$resources"
if [ "$role" = gateway ]; then
  sudo tee /etc/systemd/system/wrencos-gateway.service >/dev/null <<UNIT
[Unit]
Description=WrenCOS gateway
After=network-online.target
[Service]
EnvironmentFile=$HOME/wrencos.env
EnvironmentFile=$here/ray-ft.env
Environment=RAY_AUTH_MODE=token RAY_task_events_report_interval_ms=0
ExecStart=$venv/bin/wrencos gateway --address $head_ip:6379 --port 3000
# SIGTERM drains (DRAIN_NOTICE_SECONDS + DRAIN_SECONDS) before the gateway exits.
TimeoutStopSec=60
Restart=always
User=$USER
[Install]
WantedBy=multi-user.target
UNIT
  sudo systemctl daemon-reload
  sudo systemctl enable --now wrencos-gateway
  sudo systemctl restart wrencos-gateway
fi
