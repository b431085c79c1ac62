//! Every protocol number the decoder and the dump renderer dispatch on, named once: link types, address
//! families, EtherTypes (which are also GRE, Geneve and SLL protocol types), IP protocol numbers, UDP ports of
//! tunnels, PPP protocols, NLPIDs, and the small per-protocol codes (next-protocol fields, message types, TLVs);
//! and libpcap's names of the link types, for tables and messages.
//!
//! Bit masks of header fields stay next to the code that reads them; only values that name a protocol or a
//! message are here.

// ---- pcap link types (LINKTYPE_*) ----

/// LINKTYPE_NULL: BSD loopback, a 4-byte address family in the capturing host's byte order.
pub const LINKTYPE_NULL: u32 = 0;
/// LINKTYPE_ETHERNET: Ethernet II / IEEE 802.3.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// LINKTYPE_PPP: PPP, possibly with HDLC-like framing.
pub const LINKTYPE_PPP: u32 = 9;
/// LINKTYPE_FDDI: FDDI, a 13-byte MAC header (frame control, destination, source), then 802.2 LLC.
pub const LINKTYPE_FDDI: u32 = 10;
/// DLT_RAW as some BSDs number it (12): raw IP.
pub const LINKTYPE_RAW_12: u32 = 12;
/// DLT_RAW as OpenBSD numbers it (14): raw IP.
pub const LINKTYPE_RAW_14: u32 = 14;
/// LINKTYPE_PPP_HDLC: PPP in HDLC-like framing (or Cisco HDLC).
pub const LINKTYPE_PPP_HDLC: u32 = 50;
/// LINKTYPE_PPP_ETHER: PPPoE session frames without the Ethernet header.
pub const LINKTYPE_PPP_ETHER: u32 = 51;
/// LINKTYPE_RAW: raw IPv4 or IPv6.
pub const LINKTYPE_RAW: u32 = 101;
/// LINKTYPE_C_HDLC: Cisco HDLC.
pub const LINKTYPE_C_HDLC: u32 = 104;
/// LINKTYPE_IEEE802_11: IEEE 802.11 frames without a radio header.
pub const LINKTYPE_IEEE802_11: u32 = 105;
/// LINKTYPE_FRELAY: Frame Relay.
pub const LINKTYPE_FRELAY: u32 = 107;
/// LINKTYPE_LOOP: OpenBSD loopback, the address family in network byte order.
pub const LINKTYPE_LOOP: u32 = 108;
/// LINKTYPE_LINUX_SLL: Linux cooked capture v1 (16-byte header).
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// LINKTYPE_ARCNET_LINUX: ARCNET as Linux captures it (source, destination, 2-byte offset, protocol ID).
pub const LINKTYPE_ARCNET_LINUX: u32 = 129;
/// LINKTYPE_IEEE802_11_RADIOTAP: radiotap header, then an 802.11 frame.
pub const LINKTYPE_RADIOTAP: u32 = 127;
/// LINKTYPE_JUNIPER_ETHER: Juniper's capture header ("MGC", flags, extension TLVs), then Ethernet.
pub const LINKTYPE_JUNIPER_ETHER: u32 = 178;
/// LINKTYPE_PPI: Per-Packet Information header, then the frame of the link type it names.
pub const LINKTYPE_PPI: u32 = 192;
/// LINKTYPE_IPV4: raw IPv4 (tshark's ip dissector, which also takes IPv6).
pub const LINKTYPE_IPV4: u32 = 228;
/// LINKTYPE_IPV6: raw IPv6.
pub const LINKTYPE_IPV6: u32 = 229;
/// LINKTYPE_IPOIB: IP over InfiniBand (a pseudo header as tshark reads it, then RFC 4391's 4-byte header).
pub const LINKTYPE_IPOIB: u32 = 242;
/// LINKTYPE_NFLOG: Linux netfilter log messages (TLVs).
pub const LINKTYPE_NFLOG: u32 = 239;
/// LINKTYPE_LINUX_SLL2: Linux cooked capture v2 (20-byte header).
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// libpcap's name of a link type (`tcpdump -L`, `pcap_datalink_val_to_name`): what people know them by.
pub fn linktype_name(linktype: u32) -> Option<&'static str> {
    Some(match linktype {
        LINKTYPE_NULL => "NULL",
        LINKTYPE_ETHERNET => "EN10MB",
        LINKTYPE_PPP => "PPP",
        LINKTYPE_FDDI => "FDDI",
        LINKTYPE_RAW_12 | LINKTYPE_RAW_14 | LINKTYPE_RAW => "RAW",
        LINKTYPE_PPP_HDLC => "PPP_SERIAL",
        LINKTYPE_PPP_ETHER => "PPP_ETHER",
        LINKTYPE_C_HDLC => "C_HDLC",
        LINKTYPE_IEEE802_11 => "IEEE802_11",
        LINKTYPE_FRELAY => "FRELAY",
        LINKTYPE_LOOP => "LOOP",
        LINKTYPE_LINUX_SLL => "LINUX_SLL",
        LINKTYPE_RADIOTAP => "IEEE802_11_RADIO",
        LINKTYPE_PPI => "PPI",
        LINKTYPE_IPV4 => "IPV4",
        LINKTYPE_IPV6 => "IPV6",
        LINKTYPE_NFLOG => "NFLOG",
        LINKTYPE_LINUX_SLL2 => "LINUX_SLL2",
        LINKTYPE_ARCNET_LINUX => "ARCNET_LINUX",
        LINKTYPE_JUNIPER_ETHER => "JUNIPER_ETHER",
        LINKTYPE_IPOIB => "IPOIB",
        _ => return None,
    })
}

/// A link type as messages name it: libpcap's name and the number, `EN10MB (1)`; the number alone when it has no
/// name.
pub fn linktype_text(linktype: u32) -> String {
    match linktype_name(linktype) {
        Some(n) => format!("{n} ({linktype})"),
        None => linktype.to_string(),
    }
}

// ---- ARCNET protocol IDs ----

/// IP with RFC 1051 framing (no fragmentation fields).
pub const ARCNET_PROTO_IP_1051: u8 = 240;
/// ARP with RFC 1051 framing.
pub const ARCNET_PROTO_ARP_1051: u8 = 241;
/// IP with RFC 1201 framing (split flag and sequence number).
pub const ARCNET_PROTO_IP_1201: u8 = 212;
/// IPv6 (RFC 1201 framing).
pub const ARCNET_PROTO_IPV6: u8 = 196;
/// ANSI/ATA 878.1 diagnose (no fragmentation fields).
pub const ARCNET_PROTO_DIAGNOSE: u8 = 128;
/// BACnet: 802.2 LLC follows (no fragmentation fields).
pub const ARCNET_PROTO_BACNET: u8 = 205;

// ---- Juniper capture header ----

/// The magic number "MGC" in the first 3 bytes (old JUNOS releases leave it out: the frame is then Ethernet).
pub const JUNIPER_MAGIC: u32 = 0x4D_4743;
/// Juniper payload type (no-L2 frames): IPv4.
pub const JUNIPER_PROTO_IP: u32 = 2;
/// Juniper payload type: IPv4 out of MPLS (the MPLS header already removed).
pub const JUNIPER_PROTO_MPLS_IP: u32 = 3;
/// Juniper payload type: MPLS to be pushed on IPv4 (an MPLS label stack follows).
pub const JUNIPER_PROTO_IP_MPLS: u32 = 4;
/// Juniper payload type: MPLS.
pub const JUNIPER_PROTO_MPLS: u32 = 5;
/// Juniper payload type: IPv6.
pub const JUNIPER_PROTO_IP6: u32 = 6;
/// Juniper payload type: IPv6 out of MPLS.
pub const JUNIPER_PROTO_MPLS_IP6: u32 = 7;
/// Juniper payload type: MPLS to be pushed on IPv6 (an MPLS label stack follows).
pub const JUNIPER_PROTO_IP6_MPLS: u32 = 8;
/// Juniper payload type: PPP (protocol field only, no address/control).
pub const JUNIPER_PROTO_PPP: u32 = 200;
/// Juniper payload type: OSI, an NLPID first.
pub const JUNIPER_PROTO_ISO: u32 = 201;
/// Juniper payload type: 802.2 LLC.
pub const JUNIPER_PROTO_LLC: u32 = 202;
/// Juniper payload type: 802.2 LLC/SNAP.
pub const JUNIPER_PROTO_LLC_SNAP: u32 = 203;
/// Juniper payload type: Ethernet.
pub const JUNIPER_PROTO_ETHER: u32 = 204;
/// Juniper payload type: Frame Relay.
pub const JUNIPER_PROTO_FRELAY: u32 = 207;
/// Juniper payload type: Cisco HDLC.
pub const JUNIPER_PROTO_CHDLC: u32 = 208;

// ---- address families (NULL/LOOP link headers, NFLOG) ----

/// AF_INET on every BSD and on Linux.
pub const AF_INET: u8 = 2;
/// AF_INET6 on NetBSD and OpenBSD.
pub const AF_INET6_BSD: u8 = 24;
/// AF_INET6 on FreeBSD.
pub const AF_INET6_FREEBSD: u8 = 28;
/// AF_INET6 on Darwin (macOS, iOS).
pub const AF_INET6_DARWIN: u8 = 30;
/// AF_INET6 on Linux (the NFLOG family byte).
pub const AF_INET6_LINUX: u8 = 10;

// ---- EtherTypes (also GRE, Geneve and Linux cooked protocol types) ----

/// Largest IEEE 802.3 length field: a type/length field up to this is a length, and LLC follows.
pub const IEEE802_3_MAX_LEN: u16 = 1500;
/// Smallest EtherType: type/length values from here on are EtherTypes (1501..1535 are neither).
pub const ETHERTYPE_MIN: u16 = 0x0600;
/// IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// ARP (not decoded; named for the tests of what stops).
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// ERSPAN type III as a GRE protocol type.
pub const ETHERTYPE_ERSPAN_III: u16 = 0x22EB;
/// Transparent Ethernet bridging: an Ethernet frame follows (GRE, Geneve, NVGRE).
pub const ETHERTYPE_TEB: u16 = 0x6558;
/// IEEE 802.1Q customer VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86DD;
/// PPP as a GRE protocol type (PPTP's enhanced GRE).
pub const ETHERTYPE_PPP: u16 = 0x880B;
/// WCCP as a GRE protocol type: a WCCPv2 redirect header (left out by some implementations), then IPv4.
pub const ETHERTYPE_WCCP: u16 = 0x883E;
/// MPLS unicast.
pub const ETHERTYPE_MPLS: u16 = 0x8847;
/// MPLS multicast.
pub const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
/// PPPoE session stage.
pub const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
/// IEEE 802.1ad service VLAN tag (QinQ).
pub const ETHERTYPE_QINQ: u16 = 0x88A8;
/// ERSPAN (type I without a GRE sequence number, else by its version field) as a GRE protocol type.
pub const ETHERTYPE_ERSPAN: u16 = 0x88BE;
/// IEEE 802.1ah provider backbone bridging I-TAG.
pub const ETHERTYPE_PBB: u16 = 0x88E7;
/// Network Service Header.
pub const ETHERTYPE_NSH: u16 = 0x894F;
/// Cisco FabricPath (tshark's "DCE"), recognised only right after an Ethernet header or its one 802.1Q tag.
pub const ETHERTYPE_FABRICPATH: u16 = 0x8903;
/// Cisco VN-Tag (802.1Qbh): a 4-byte tag, then the next EtherType.
pub const ETHERTYPE_VNTAG: u16 = 0x8926;
/// Cisco MetaData (TrustSec): version, length, option, the 16-bit SGT, then the next EtherType.
pub const ETHERTYPE_CMD: u16 = 0x8909;
/// The pre-standard QinQ tag some switches use.
pub const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

// ---- FDDI ----

/// FDDI frame control of an asynchronous LLC frame (the low 4 bits are its priority): 802.2 LLC follows.
pub const FDDI_FC_LLC_ASYNC: u8 = 0x50;

// ---- Linux cooked capture ----

/// ARPHRD_IPGRE: the SLL protocol field is a GRE protocol type.
pub const ARPHRD_IPGRE: u16 = 778;
/// ARPHRD_NETLINK: netlink messages, never IP.
pub const ARPHRD_NETLINK: u16 = 824;
/// LINUX_SLL_P_802_2: an 802.2 LLC header follows.
pub const LINUX_SLL_P_802_2: u16 = 0x0004;
/// LINUX_SLL_P_PPPHDLC: PPP in HDLC-like framing follows.
pub const LINUX_SLL_P_PPPHDLC: u16 = 0x0007;

// ---- NFLOG TLV types ----

/// NFULA_PACKET_HDR: hardware protocol (an EtherType), hook, padding.
pub const NFULA_PACKET_HDR: u16 = 1;
/// NFULA_PAYLOAD: the logged packet.
pub const NFULA_PAYLOAD: u16 = 9;

// ---- IEEE 802.2 LLC / SNAP ----

/// The SNAP SAP (DSAP and SSAP of an LLC/SNAP header).
pub const LLC_SAP_SNAP: u8 = 0xAA;
/// The SAP of IP (DSAP 6).
pub const LLC_SAP_IP: u8 = 0x06;
/// LLC unnumbered-information control byte (also Frame Relay's and PPP's UI control).
pub const LLC_CONTROL_UI: u8 = 0x03;
/// SNAP OUI 00-00-00: the PID is an EtherType.
pub const OUI_ENCAP_ETHER: u32 = 0x00_0000;
/// SNAP OUI 00-00-F8 (Cisco's IEEE 802.1H-compatible): the PID is an EtherType.
pub const OUI_CISCO_90: u32 = 0x00_00F8;

// ---- Cisco HDLC, PPP ----

/// Cisco HDLC unicast address byte.
pub const CHDLC_ADDR_UNICAST: u8 = 0x0F;
/// Cisco HDLC multicast/broadcast address byte.
pub const CHDLC_ADDR_MULTICAST: u8 = 0x8F;
/// PPP all-stations address byte of HDLC-like framing (followed by the UI control byte).
pub const PPP_ADDRESS: u8 = 0xFF;
/// PPP protocol: IPv4.
pub const PPP_IP: u16 = 0x0021;
/// PPP protocol: IPv6.
pub const PPP_IPV6: u16 = 0x0057;
/// PPP protocol: MPLS unicast.
pub const PPP_MPLS_UNICAST: u16 = 0x0281;
/// PPP protocol: MPLS multicast.
pub const PPP_MPLS_MULTICAST: u16 = 0x0283;

// ---- Frame Relay: control values and NLPIDs (ISO/IEC TR 9577) ----

/// Frame Relay XID control byte (no IP in it).
pub const FR_CONTROL_XID: u8 = 0xAF;
/// NLPID null (no layer 3 protocol identification).
pub const NLPID_NULL: u8 = 0x00;
/// NLPID of Q.933 signalling.
pub const NLPID_Q933: u8 = 0x08;
/// NLPID of a SNAP header (OUI + PID).
pub const NLPID_SNAP: u8 = 0x80;
/// NLPID of ISO 8473 CLNP.
pub const NLPID_CLNP: u8 = 0x81;
/// NLPID of ISO 9542 ES-IS.
pub const NLPID_ESIS: u8 = 0x82;
/// NLPID of ISO 10589 IS-IS.
pub const NLPID_ISIS: u8 = 0x83;
/// NLPID of IPv6.
pub const NLPID_IPV6: u8 = 0x8E;
/// NLPID of FRF.9 data compression.
pub const NLPID_COMPRESSED: u8 = 0xB0;
/// NLPID of FRF.12 fragmentation.
pub const NLPID_FRF12: u8 = 0xB1;
/// NLPID of IPv4.
pub const NLPID_IP: u8 = 0xCC;
/// NLPID of PPP.
pub const NLPID_PPP: u8 = 0xCF;

// ---- MPLS ----

/// The generic associated channel label (GAL): a PW associated channel follows, not IP.
pub const MPLS_LABEL_GAL: u32 = 13;

// ---- IP versions ----

/// The version nibble of IPv4.
pub const IP_VERSION_4: u8 = 4;
/// The version nibble of IPv6.
pub const IP_VERSION_6: u8 = 6;
/// The first nibble of an MPLS pseudowire control word (and of the MAC address an Ethernet pseudowire starts
/// with, as tshark guesses).
pub const PW_FIRST_NIBBLE: u8 = 0;

// ---- IP protocol numbers (IPv4 protocol, IPv6 next header) ----

/// IPv6 hop-by-hop options.
pub const IPPROTO_HOPOPTS: u8 = 0;
/// ICMP (not entered: its errors quote IP headers).
pub const IPPROTO_ICMP: u8 = 1;
/// IPv4 in IP.
pub const IPPROTO_IPIP: u8 = 4;
/// TCP.
pub const IPPROTO_TCP: u8 = 6;
/// UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IPv6 in IP.
pub const IPPROTO_IPV6: u8 = 41;
/// IPv6 routing header.
pub const IPPROTO_ROUTING: u8 = 43;
/// IPv6 fragment header.
pub const IPPROTO_FRAGMENT: u8 = 44;
/// GRE.
pub const IPPROTO_GRE: u8 = 47;
/// ESP (encrypted: not entered).
pub const IPPROTO_ESP: u8 = 50;
/// Authentication header.
pub const IPPROTO_AH: u8 = 51;
/// ICMPv6 (not entered).
pub const IPPROTO_ICMPV6: u8 = 58;
/// IPv6 no next header.
pub const IPPROTO_NONE: u8 = 59;
/// IPv6 destination options.
pub const IPPROTO_DSTOPTS: u8 = 60;
/// EtherIP (RFC 3378).
pub const IPPROTO_ETHERIP: u8 = 97;
/// IPv6 mobility header (tshark does not look past it).
pub const IPPROTO_MOBILITY: u8 = 135;
/// UDP-Lite.
pub const IPPROTO_UDPLITE: u8 = 136;
/// MPLS in IP.
pub const IPPROTO_MPLS: u8 = 137;

// ---- IPv6 options ----

/// IPv6 option Pad1 (a single byte, no length).
pub const IP6OPT_PAD1: u8 = 0x00;
/// IPv6 Jumbo Payload option (RFC 2675), in a Hop-by-Hop header.
pub const IP6OPT_JUMBO: u8 = 0xC2;
/// The length of the Jumbo Payload option's value.
pub const IP6OPT_JUMBO_LEN: u8 = 4;
/// The smallest valid jumbo payload length: a smaller one is not taken (as tshark, which reports it missing).
pub const IP6_JUMBO_MIN: u32 = 65_536;

// ---- UDP ports of tunnels ----

/// GTP-U (user plane).
pub const PORT_GTP_U: u16 = 2152;
/// GRE over UDP (RFC 8086).
pub const PORT_GRE_UDP: u16 = 4754;
/// Teredo (IPv6 over UDP through NATs).
pub const PORT_TEREDO: u16 = 3544;
/// AYIYA (Anything In Anything).
pub const PORT_AYIYA: u16 = 5072;
/// VXLAN.
pub const PORT_VXLAN: u16 = 4789;
/// VXLAN-GPE.
pub const PORT_VXLAN_GPE: u16 = 4790;
/// Geneve.
pub const PORT_GENEVE: u16 = 6081;
/// sFlow (never entered: its samples are not the capture's packets).
pub const PORT_SFLOW: u16 = 6343;

// ---- GRE, ERSPAN ----

/// GRE version 0, plain GRE (any other version is read as PPTP's enhanced GRE).
pub const GRE_VERSION_0: u16 = 0;
/// ERSPAN version field of type II.
pub const ERSPAN_VERSION_II: u8 = 1;
/// ERSPAN version field of type III.
pub const ERSPAN_VERSION_III: u8 = 2;
/// ERSPAN type III frame type of Ethernet.
pub const ERSPAN_FT_ETHERNET: u8 = 0;
/// The first Aruba GRE protocol type (an 802.11 frame without FCS follows).
pub const GRE_ARUBA_FIRST: u16 = 0x8200;
/// The last Aruba GRE protocol type tshark decodes; the types between go in steps of [`GRE_ARUBA_STEP`].
pub const GRE_ARUBA_LAST: u16 = 0x8370;
/// The step between Aruba GRE protocol types (0x8200, 0x8210, ... 0x8370).
pub const GRE_ARUBA_STEP: u16 = 0x10;

// ---- AYIYA ----

/// AYIYA opcode "forward": the payload is a packet of the header's next-header protocol.
pub const AYIYA_OP_FORWARD: u8 = 1;

// ---- Teredo ----

/// Teredo indicator type of the origin indication (8 bytes: type, obfuscated port and IPv4 address).
pub const TEREDO_ORIGIN: u16 = 0;
/// Teredo indicator type of the authentication header (lengths, client identifier, value, nonce, confirmation).
pub const TEREDO_AUTH: u16 = 1;

// ---- NSH and VXLAN-GPE next protocol ----

/// NSH next protocol: IPv4.
pub const NSH_NP_IPV4: u8 = 1;
/// NSH next protocol: IPv6.
pub const NSH_NP_IPV6: u8 = 2;
/// NSH next protocol: Ethernet.
pub const NSH_NP_ETHERNET: u8 = 3;
/// NSH next protocol: MPLS.
pub const NSH_NP_MPLS: u8 = 5;
/// VXLAN-GPE next protocol: IPv4.
pub const VXLAN_GPE_NP_IPV4: u8 = 1;
/// VXLAN-GPE next protocol: IPv6.
pub const VXLAN_GPE_NP_IPV6: u8 = 2;
/// VXLAN-GPE next protocol: Ethernet.
pub const VXLAN_GPE_NP_ETHERNET: u8 = 3;
/// VXLAN-GPE next protocol: NSH.
pub const VXLAN_GPE_NP_NSH: u8 = 4;
/// VXLAN-GPE next protocol: MPLS.
pub const VXLAN_GPE_NP_MPLS: u8 = 5;

// ---- GTP ----

/// GTP version 1 (the version field, the top 3 bits of the first byte).
pub const GTP_VERSION_1: u8 = 1;
/// GTP message type T-PDU: a user packet follows.
pub const GTP_MSG_TPDU: u8 = 0xFF;
/// GTP extension header type "no more extension headers".
pub const GTP_EXT_NONE: u8 = 0;

// ---- IEEE 802.11, radiotap ----

/// 802.11 protocol version 0.
pub const IEEE80211_VERSION_0: u8 = 0;
/// 802.11 frame type "data".
pub const IEEE80211_TYPE_DATA: u8 = 2;
/// Radiotap present bit of the TSFT field (8 bytes, 8-aligned).
pub const RADIOTAP_PRESENT_TSFT: u32 = 1 << 0;
/// Radiotap present bit of the Flags field.
pub const RADIOTAP_PRESENT_FLAGS: u32 = 1 << 1;
/// Radiotap present bit saying another present word follows.
pub const RADIOTAP_PRESENT_EXT: u32 = 1 << 31;
/// Radiotap flag: the frame ends with a 4-byte FCS.
pub const RADIOTAP_F_FCS: u8 = 0x10;
/// Radiotap flag: the 802.11 header is padded to a multiple of 4 bytes.
pub const RADIOTAP_F_DATAPAD: u8 = 0x20;

// ---- TCP ----

/// TCP flag FIN.
pub const TCP_FIN: u16 = 0x001;
/// TCP flag SYN.
pub const TCP_SYN: u16 = 0x002;
/// TCP flag RST.
pub const TCP_RST: u16 = 0x004;
/// TCP flag PSH.
pub const TCP_PSH: u16 = 0x008;
/// TCP flag ACK.
pub const TCP_ACK: u16 = 0x010;
/// TCP flag URG.
pub const TCP_URG: u16 = 0x020;
/// TCP flag ECE.
pub const TCP_ECE: u16 = 0x040;
/// TCP flag CWR.
pub const TCP_CWR: u16 = 0x080;
/// TCP flag NS (the low bit of the reserved nibble).
pub const TCP_NS: u16 = 0x100;
/// TCP option kind: end of option list.
pub const TCPOPT_EOL: u8 = 0;
/// TCP option kind: no-operation.
pub const TCPOPT_NOP: u8 = 1;
/// TCP option kind: maximum segment size.
pub const TCPOPT_MSS: u8 = 2;
/// TCP option kind: window scale.
pub const TCPOPT_WINDOW_SCALE: u8 = 3;
/// TCP option kind: SACK permitted.
pub const TCPOPT_SACK_PERMITTED: u8 = 4;
/// TCP option kind: SACK blocks.
pub const TCPOPT_SACK: u8 = 5;
/// TCP option kind: timestamps.
pub const TCPOPT_TIMESTAMPS: u8 = 8;
