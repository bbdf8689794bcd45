using System.Runtime.InteropServices;

namespace WhaleWall.Firewall.Kernel.Netlink;

/// <summary>The libc calls a netlink socket needs (socket, bind, send, recv, setsockopt), and
/// the constants of linux/netlink.h used here.</summary>
internal static unsafe class NetlinkNative
{
    public const int AF_NETLINK = 16;
    public const int SOCK_RAW = 3;
    public const int SOCK_CLOEXEC = 0x80000;
    public const int NETLINK_ROUTE = 0;
    public const int NETLINK_NETFILTER = 12;

    public const int SOL_SOCKET = 1;
    public const int SO_RCVTIMEO = 20;
    public const int SO_RCVBUF = 8;
    public const int SOL_NETLINK = 270;
    public const int NETLINK_EXT_ACK = 11;
    public const int NETLINK_GET_STRICT_CHK = 12;

    public const int MSG_TRUNC = 0x20;

    public const ushort NLM_F_REQUEST = 0x1;
    public const ushort NLM_F_MULTI = 0x2;
    public const ushort NLM_F_ACK = 0x4;
    public const ushort NLM_F_DUMP = 0x300;
    public const ushort NLM_F_DUMP_INTR = 0x10;

    public const ushort NLMSG_ERROR = 0x2;
    public const ushort NLMSG_DONE = 0x3;

    public const ushort NLA_F_NESTED = 0x8000;
    public const ushort NLA_F_NET_BYTEORDER = 0x4000;
    public const ushort NLA_TYPE_MASK = 0x3fff;

    public const int O_RDONLY = 0;
    public const int O_CLOEXEC = 0x80000;
    public const int CLONE_NEWNET = 0x40000000;

    [StructLayout(LayoutKind.Sequential)]
    public struct SockaddrNl
    {
        public ushort Family;
        public ushort Pad;
        public uint Pid;
        public uint Groups;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct Timeval
    {
        public long Seconds;
        public long Microseconds;
    }

    [DllImport("libc", SetLastError = true)] public static extern int socket(int domain, int type, int protocol);
    [DllImport("libc", SetLastError = true)] public static extern int bind(int fd, ref SockaddrNl addr, int len);
    [DllImport("libc", SetLastError = true)] public static extern int getsockname(int fd, ref SockaddrNl addr, ref int len);
    [DllImport("libc", SetLastError = true)] public static extern nint sendto(int fd, byte* buf, nint len, int flags, ref SockaddrNl addr, int addrlen);
    [DllImport("libc", SetLastError = true)] public static extern nint recv(int fd, byte* buf, nint len, int flags);
    [DllImport("libc", SetLastError = true)] public static extern int setsockopt(int fd, int level, int name, void* value, int len);
    [DllImport("libc", SetLastError = true)] public static extern int close(int fd);

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    public const short POLLIN = 1;
    public const int MSG_DONTWAIT = 0x40;

    [DllImport("libc", SetLastError = true)] public static extern int poll(ref PollFd fds, ulong nfds, int timeoutMs);
    [DllImport("libc", SetLastError = true, CharSet = CharSet.Ansi)] public static extern int open(string path, int flags);
    [DllImport("libc", SetLastError = true)] public static extern int setns(int fd, int nstype);
}
