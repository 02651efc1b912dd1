//! Writes seed frames for the `parse_classify` fuzz target (each file: one
//! selector byte, then a frame): `cargo run -p farm-wire --example fuzz_seeds -- fuzz/corpus/parse_classify`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use farm_wire::gen::{l4_header, FrameBuilder, Invoking};
use farm_wire::ndisc::NeighborFlags;
use farm_wire::{EtherType, EthernetAddress, IpProtocol, TcpFlags, VlanTag, VlanTags};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: fuzz_seeds <dir>")?);
    std::fs::create_dir_all(&dir)?;
    let client = EthernetAddress([2, 0, 0, 0, 0, 0x64]);
    let node = EthernetAddress([2, 0, 0, 0, 0, 1]);
    let tags = [
        VlanTags::new(),
        VlanTags::from_slice(&[
            VlanTag::new(EtherType::QinQ, 0, false, 100),
            VlanTag::new(EtherType::Vlan, 0, false, 10),
        ])?,
    ];
    let v4 = (
        IpAddr::from(Ipv4Addr::new(198, 19, 7, 100)),
        IpAddr::from(Ipv4Addr::new(198, 18, 0, 10)),
    );
    let v6 = (
        IpAddr::from("2001:db8:7::100".parse::<Ipv6Addr>()?),
        IpAddr::from("2001:db8::a".parse::<Ipv6Addr>()?),
    );
    let mut frames = Vec::new();
    for t in tags {
        let b =
            FrameBuilder::new(client, EthernetAddress([0x5a, 0xfe, 198, 18, 0, 10])).with_tags(t);
        for (c, v) in [v4, v6] {
            frames.push(b.tcp(c, v, 40000, 80, TcpFlags::SYN)?);
            frames.push(b.tcp(c, v, 40000, 443, TcpFlags::ACK)?);
            frames.push(b.udp(c, v, 40000, 53, b"query")?);
            frames.push(b.udp(c, v, 40000, 5050, b"x")?);
            frames.push(b.echo_request(c, v, 1, 1)?);
            frames.push(b.to_mac(node).udp(c, v, 1, 2, b"")?);
        }
        let bc = b.to_mac(EthernetAddress::BROADCAST);
        frames.push(bc.arp_request(
            Ipv4Addr::new(198, 19, 7, 100),
            Ipv4Addr::new(198, 18, 0, 10),
        )?);
        frames.push(bc.arp_request(Ipv4Addr::new(198, 18, 0, 10), Ipv4Addr::new(198, 18, 0, 10))?);
        frames.push(b.arp_reply(
            client,
            Ipv4Addr::new(198, 19, 7, 100),
            node,
            Ipv4Addr::new(198, 18, 0, 10),
        )?);
        let (IpAddr::V6(c6), IpAddr::V6(vip6)) = v6 else {
            unreachable!()
        };
        frames.push(b.neighbor_solicit(c6, vip6)?);
        frames.push(b.neighbor_solicit(vip6, c6)?);
        frames.push(b.neighbor_advert(c6, vip6, c6, NeighborFlags::SOLICITED, Some(client))?);
        let inv = Invoking {
            src: v4.1,
            dst: v4.0,
            protocol: IpProtocol::Tcp,
            src_port: 443,
            dst_port: 40000,
        };
        frames.push(b.frag_needed(
            Ipv4Addr::new(198, 18, 255, 254),
            Ipv4Addr::new(198, 18, 0, 10),
            1400,
            &inv,
        )?);
        let inv = Invoking {
            src: v6.1,
            dst: v6.0,
            protocol: IpProtocol::Udp,
            src_port: 5050,
            dst_port: 40000,
        };
        frames.push(b.packet_too_big("2001:db8::fffe".parse()?, vip6, 1280, &inv)?);
        let mut first = l4_header(IpProtocol::Udp, 40000, 53, 3000);
        first.resize(64, 0);
        frames.push(b.ipv4_fragment(
            Ipv4Addr::new(198, 19, 7, 100),
            Ipv4Addr::new(198, 18, 0, 10),
            IpProtocol::Udp,
            0,
            true,
            &first,
        )?);
        frames.push(b.ipv4_fragment(
            Ipv4Addr::new(198, 19, 7, 100),
            Ipv4Addr::new(198, 18, 0, 11),
            IpProtocol::Udp,
            64,
            false,
            &[0; 32],
        )?);
        frames.push(b.ipv6_fragment(
            c6,
            vip6,
            IpProtocol::Tcp,
            0,
            true,
            &l4_header(IpProtocol::Tcp, 40000, 80, 0),
        )?);
        frames.push(b.ipv6_fragment(c6, vip6, IpProtocol::Udp, 1232, false, &[0; 32])?);
    }
    for (i, f) in frames.iter().enumerate() {
        for sel in [0u8, 3, 4 | 0x80, 6] {
            let mut data = vec![sel];
            data.extend_from_slice(f);
            std::fs::write(dir.join(format!("seed-{i:03}-{sel:02x}")), data)?;
        }
    }
    println!("wrote {} frames x 4 selectors", frames.len());
    Ok(())
}
