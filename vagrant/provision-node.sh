#!/bin/bash
# Provisions one farm node of the Vagrant lab (run as root by `vagrant up`; idempotent):
# dependencies and the Rust toolchain, a release build of farmd, farmctl and farm-dataplane from
# /vagrant, the configuration, the network setup of a farm node, the systemd unit, farmd started.
set -euo pipefail
node=$1
repo=/vagrant
uplink=eth1

# Dependencies (libdpdk-dev, clang, apache2, nftables, ...): the project's own installer.
bash "$repo/tests/install-deps.sh"
if ! command -v cargo >/dev/null && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
fi
export PATH="$HOME/.cargo/bin:$PATH"
CARGO_TARGET_DIR=/var/tmp/farm-target cargo build --release --quiet --manifest-path "$repo/Cargo.toml" \
    -p farm-control -p farm-dataplane --bins
install -m 0755 /var/tmp/farm-target/release/{farmd,farmctl,farm-dataplane} /usr/local/bin/

# Configuration: one file for every node. The first node provisioned makes the cluster's
# secrets once with `farmctl config init` (a random hash_seed written into a copy of farm.toml,
# the heartbeat secret and the API token), in a local directory (modes 0600 hold there), then
# puts them on the host's share (vagrant/.cluster/, git-ignored); every node installs them.
cluster="$repo/vagrant/.cluster"
if [ ! -s "$cluster/farm.toml" ]; then
    tmp=$(mktemp -d)
    cp "$repo/vagrant/farm.toml" "$tmp/farm.toml"
    farmctl --config "$tmp/farm.toml" config init --secret-file "$tmp/web.secret" --token-file "$tmp/web.token"
    mkdir -p "$cluster"
    cp "$tmp/web.secret" "$tmp/web.token" "$cluster/"
    cp "$tmp/farm.toml" "$cluster/farm.toml"     # last: its presence means the set is complete
    rm -rf "$tmp"
fi
install -d -m 0700 /etc/farm /etc/farm/web
install -m 0640 "$cluster/farm.toml" /etc/farm/farm.toml    # holds the hash seed
install -m 0600 "$cluster/web.secret" /etc/farm/web.secret
install -m 0600 "$cluster/web.token" /etc/farm/web.token
install -m 0755 "$repo/configs/scripts/apache/start_both" "$repo/configs/scripts/apache/stop_both" /etc/farm/web/
farmctl config check /etc/farm/farm.toml

# Apache: started by farmd's start_both, not at boot; a page naming the node.
systemctl disable --now apache2 >/dev/null 2>&1 || true
echo "$node" > /var/www/html/index.html

# The node's network as the lab sets it up (tests/src/lab/net.rs): the uplink belongs to the
# data plane (promiscuous, no ARP, nothing for the kernel), the VIP on lo, and sysctls so that
# the kernel never answers ARP for the VIP nor announces it.
cat > /etc/sysctl.d/60-farm.conf <<SYSCTL
net.ipv4.conf.all.arp_ignore = 1
net.ipv4.conf.all.arp_announce = 2
net.ipv4.ip_nonlocal_bind = 1
net.ipv6.conf.$uplink.disable_ipv6 = 1
SYSCTL
sysctl -q --system
cat > /etc/nftables.d-farm.nft <<NFT
table netdev farm_uplink {
  chain uplink {
    type filter hook ingress device "$uplink" priority 0; policy drop;
  }
}
NFT
cat > /etc/systemd/system/farm-net.service <<UNIT
[Unit]
Description=farm node network (uplink for the data plane, VIP on lo)
Before=farmd.service
After=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/ip address flush dev $uplink
ExecStart=/usr/sbin/ip link set dev $uplink promisc on arp off up
ExecStart=-/usr/sbin/ip address add 198.18.1.100/32 dev lo
ExecStart=-/usr/sbin/nft delete table netdev farm_uplink
ExecStart=/usr/sbin/nft -f /etc/nftables.d-farm.nft

[Install]
WantedBy=multi-user.target
UNIT

# farmd: the shipped unit, with this node's name.
install -m 0644 "$repo/control/systemd/farmd.service" /etc/systemd/system/farmd.service
install -d /etc/systemd/system/farmd.service.d
cat > /etc/systemd/system/farmd.service.d/node.conf <<UNIT
[Unit]
Requires=farm-net.service
After=farm-net.service

[Service]
ExecStart=
ExecStart=/usr/local/bin/farmd --config /etc/farm/farm.toml --node $node --start
UNIT
systemctl daemon-reload
systemctl enable --now farm-net.service farmd.service
systemctl restart farmd.service
echo "$node: farmd started; farmctl state / curl http://127.0.0.1:9010/var/modules/web/ready.txt"
