using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using System.Runtime.InteropServices;

namespace WhaleWall.TestSupport;

/// <summary>
/// Hand-made Ethernet frames, sent and captured with AF_PACKET sockets inside a namespace (what
/// a container with Docker's default CAP_NET_RAW can do): spoofed source MACs and addresses,
/// ARP replies, router and neighbour advertisements. Only ever sent on the lab's own veths.
/// </summary>
public static unsafe class RawFrames
{
    private const int AF_PACKET = 17, SOCK_RAW = 3, ETH_P_ALL = 0x0003;
    private const int SOL_SOCKET = 1, SO_RCVTIMEO = 20;

    [StructLayout(LayoutKind.Sequential)]
    private struct SockaddrLl
    {
        public ushort Family;
        public ushort Protocol; // network order
        public int IfIndex;
        public ushort HaType;
        public byte PktType;
        public byte HaLen;
        public fixed byte Addr[8];
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timeval { public long Sec; public long Usec; }

    [DllImport("libc", SetLastError = true)] private static extern int socket(int domain, int type, int protocol);
    [DllImport("libc", SetLastError = true)] private static extern int bind(int fd, ref SockaddrLl addr, int len);
    [DllImport("libc", SetLastError = true)] private static extern nint send(int fd, byte* buf, nint len, int flags);
    [DllImport("libc", SetLastError = true)] private static extern nint recv(int fd, byte* buf, nint len, int flags);
    [DllImport("libc", SetLastError = true)] private static extern int setsockopt(int fd, int level, int name, void* value, int len);
    [DllImport("libc", SetLastError = true)] private static extern int close(int fd);
    [DllImport("libc", SetLastError = true)] private static extern uint if_nametoindex(string name);

    private static int Open(string nsPath, string ifName) => Netns.Run(nsPath, () =>
    {
        var index = (int)if_nametoindex(ifName);
        if (index == 0) throw new IOException($"no interface {ifName} in {nsPath}");
        var fd = socket(AF_PACKET, SOCK_RAW, BinaryPrimitives.ReverseEndianness((ushort)ETH_P_ALL));
        if (fd < 0) throw new IOException($"socket AF_PACKET: errno {Marshal.GetLastPInvokeError()}");
        var sll = new SockaddrLl { Family = AF_PACKET, Protocol = BinaryPrimitives.ReverseEndianness((ushort)ETH_P_ALL), IfIndex = index };
        if (bind(fd, ref sll, sizeof(SockaddrLl)) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            close(fd);
            throw new IOException($"bind AF_PACKET: errno {errno}");
        }
        return fd;
    });

    /// <summary>Sends each frame as-is on <paramref name="ifName"/> of the namespace.</summary>
    public static void Send(string nsPath, string ifName, params byte[][] frames)
    {
        var fd = Open(nsPath, ifName);
        try
        {
            foreach (var frame in frames)
                fixed (byte* p = frame)
                    if (send(fd, p, frame.Length, 0) != frame.Length)
                        throw new IOException($"send AF_PACKET: errno {Marshal.GetLastPInvokeError()}");
        }
        finally { close(fd); }
    }

    /// <summary>A capture of every frame arriving on an interface of a namespace, from now until
    /// disposed.</summary>
    public sealed class Capture : IDisposable
    {
        private readonly int _fd;
        private readonly List<byte[]> _frames = new();
        private readonly Thread _reader;
        private volatile bool _stopping;

        public Capture(string nsPath, string ifName)
        {
            _fd = Open(nsPath, ifName);
            var tv = new Timeval { Sec = 0, Usec = 100_000 };
            setsockopt(_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(Timeval));
            _reader = new Thread(Read) { IsBackground = true, Name = "capture " + ifName };
            _reader.Start();
        }

        private void Read()
        {
            var buffer = new byte[65536];
            while (!_stopping)
            {
                nint n;
                fixed (byte* p = buffer) n = recv(_fd, p, buffer.Length, 0);
                if (n > 0) lock (_frames) _frames.Add(buffer.AsSpan(0, (int)n).ToArray());
            }
        }

        /// <summary>Whether a frame containing <paramref name="marker"/> arrived within <paramref name="within"/>.</summary>
        public bool Saw(byte[] marker, TimeSpan within)
        {
            var deadline = DateTime.UtcNow + within;
            while (true)
            {
                lock (_frames)
                    if (_frames.Any(f => f.AsSpan().IndexOf(marker) >= 0)) return true;
                if (DateTime.UtcNow > deadline) return false;
                Thread.Sleep(10);
            }
        }

        public void Dispose()
        {
            _stopping = true;
            _reader.Join(TimeSpan.FromSeconds(2));
            close(_fd);
        }
    }

    // ------------------------------------------------------------------ frame builders

    public static readonly PhysicalAddress Broadcast = PhysicalAddress.Parse("ff-ff-ff-ff-ff-ff");

    public static PhysicalAddress Mac(string text) => PhysicalAddress.Parse(text.Replace(':', '-').ToUpperInvariant());

    /// <summary>The same frame with an 802.1Q tag (VLAN 0 by default: a priority tag, which
    /// receivers without VLAN devices treat as untagged).</summary>
    public static byte[] Tagged(byte[] frame, ushort tci = 0)
    {
        var tagged = new byte[frame.Length + 4];
        frame.AsSpan(0, 12).CopyTo(tagged);
        BinaryPrimitives.WriteUInt16BigEndian(tagged.AsSpan(12), 0x8100);
        BinaryPrimitives.WriteUInt16BigEndian(tagged.AsSpan(14), tci);
        frame.AsSpan(12).CopyTo(tagged.AsSpan(16));
        return tagged;
    }

    private static byte[] Ethernet(PhysicalAddress dst, PhysicalAddress src, ushort type, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[14 + payload.Length];
        dst.GetAddressBytes().CopyTo(frame, 0);
        src.GetAddressBytes().CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), type);
        payload.CopyTo(frame.AsSpan(14));
        return frame;
    }

    /// <summary>Ethernet + IPv4 + UDP carrying <paramref name="payload"/>.</summary>
    public static byte[] Udp4(PhysicalAddress dstMac, PhysicalAddress srcMac, IPAddress src, IPAddress dst, ushort dstPort, byte[] payload)
    {
        var ip = new byte[20 + 8 + payload.Length];
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(2), (ushort)ip.Length);
        ip[8] = 64; // ttl
        ip[9] = 17; // udp
        src.GetAddressBytes().CopyTo(ip, 12);
        dst.GetAddressBytes().CopyTo(ip, 16);
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(10), Checksum(ip.AsSpan(0, 20)));
        var udp = ip.AsSpan(20);
        BinaryPrimitives.WriteUInt16BigEndian(udp, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], dstPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)(8 + payload.Length));
        payload.CopyTo(udp[8..]); // checksum 0: none (IPv4)
        return Ethernet(dstMac, srcMac, 0x0800, ip);
    }

    /// <summary>Ethernet + IPv6 + UDP (with its mandatory checksum).</summary>
    public static byte[] Udp6(PhysicalAddress dstMac, PhysicalAddress srcMac, IPAddress src, IPAddress dst, ushort dstPort, byte[] payload)
    {
        var udp = new byte[8 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(udp, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(2), dstPort);
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(4), (ushort)udp.Length);
        payload.CopyTo(udp, 8);
        BinaryPrimitives.WriteUInt16BigEndian(udp.AsSpan(6), Checksum6(src, dst, 17, udp));
        return Ethernet(dstMac, srcMac, 0x86dd, Ipv6(src, dst, 17, 64, udp));
    }

    /// <summary>An ARP reply (op 2): "<paramref name="senderIp"/> is at <paramref name="senderMac"/>".</summary>
    public static byte[] ArpReply(PhysicalAddress ethSrc, PhysicalAddress senderMac, IPAddress senderIp, PhysicalAddress targetMac, IPAddress targetIp, PhysicalAddress ethDst)
    {
        var arp = new byte[28];
        BinaryPrimitives.WriteUInt16BigEndian(arp, 1);          // ethernet
        BinaryPrimitives.WriteUInt16BigEndian(arp.AsSpan(2), 0x0800);
        arp[4] = 6;
        arp[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(arp.AsSpan(6), 2); // reply
        senderMac.GetAddressBytes().CopyTo(arp, 8);
        senderIp.GetAddressBytes().CopyTo(arp, 14);
        targetMac.GetAddressBytes().CopyTo(arp, 18);
        targetIp.GetAddressBytes().CopyTo(arp, 24);
        return Ethernet(ethDst, ethSrc, 0x0806, arp);
    }

    /// <summary>A router advertisement to all nodes (ff02::1) from <paramref name="srcLinkLocal"/>:
    /// default router for 1800 s, with an autonomous on-link prefix.</summary>
    public static byte[] RouterAdvertisement(PhysicalAddress srcMac, IPAddress srcLinkLocal, IPAddress prefix, int prefixLength)
    {
        var ra = new byte[16 + 32 + 8];
        ra[0] = 134;
        ra[4] = 64;                                               // cur hop limit
        BinaryPrimitives.WriteUInt16BigEndian(ra.AsSpan(6), 1800); // router lifetime
        var pio = ra.AsSpan(16);
        pio[0] = 3; pio[1] = 4; pio[2] = (byte)prefixLength; pio[3] = 0xc0; // on-link + autonomous
        BinaryPrimitives.WriteUInt32BigEndian(pio[4..], 86400);
        BinaryPrimitives.WriteUInt32BigEndian(pio[8..], 14400);
        prefix.GetAddressBytes().CopyTo(pio[16..]);
        var sll = ra.AsSpan(48);
        sll[0] = 1; sll[1] = 1;
        srcMac.GetAddressBytes().CopyTo(sll[2..]);
        var allNodes = IPAddress.Parse("ff02::1");
        BinaryPrimitives.WriteUInt16BigEndian(ra.AsSpan(2), Checksum6(srcLinkLocal, allNodes, 58, ra));
        return Ethernet(Mac("33:33:00:00:00:01"), srcMac, 0x86dd, Ipv6(srcLinkLocal, allNodes, 58, 255, ra));
    }

    /// <summary>An unsolicited neighbour advertisement (override) to all nodes: "<paramref name="target"/>
    /// is at <paramref name="targetMac"/>".</summary>
    public static byte[] NeighbourAdvertisement(PhysicalAddress srcMac, IPAddress src, IPAddress target, PhysicalAddress targetMac)
    {
        var na = new byte[24 + 8];
        na[0] = 136;
        na[4] = 0x20; // override
        target.GetAddressBytes().CopyTo(na, 8);
        na[24] = 2; na[25] = 1;
        targetMac.GetAddressBytes().CopyTo(na, 26);
        var allNodes = IPAddress.Parse("ff02::1");
        BinaryPrimitives.WriteUInt16BigEndian(na.AsSpan(2), Checksum6(src, allNodes, 58, na));
        return Ethernet(Mac("33:33:00:00:00:01"), srcMac, 0x86dd, Ipv6(src, allNodes, 58, 255, na));
    }

    private static byte[] Ipv6(IPAddress src, IPAddress dst, byte next, byte hopLimit, ReadOnlySpan<byte> payload)
    {
        var ip = new byte[40 + payload.Length];
        ip[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(4), (ushort)payload.Length);
        ip[6] = next;
        ip[7] = hopLimit;
        src.GetAddressBytes().CopyTo(ip, 8);
        dst.GetAddressBytes().CopyTo(ip, 24);
        payload.CopyTo(ip.AsSpan(40));
        return ip;
    }

    private static ushort Checksum6(IPAddress src, IPAddress dst, byte next, ReadOnlySpan<byte> upper)
    {
        var pseudo = new byte[40 + upper.Length];
        src.GetAddressBytes().CopyTo(pseudo, 0);
        dst.GetAddressBytes().CopyTo(pseudo, 16);
        BinaryPrimitives.WriteUInt32BigEndian(pseudo.AsSpan(32), (uint)upper.Length);
        pseudo[39] = next;
        upper.CopyTo(pseudo.AsSpan(40));
        return Checksum(pseudo);
    }

    private static ushort Checksum(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        for (var i = 0; i + 1 < data.Length; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if (data.Length % 2 == 1) sum += (uint)data[^1] << 8;
        while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
        var result = (ushort)~sum;
        return result == 0 ? (ushort)0xffff : result;
    }
}
