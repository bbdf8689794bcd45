namespace WhaleWall.Firewall.Kernel.Netlink;

/// <summary>The kernel answered a netlink request with an error (errno, e.g. 2 ENOENT, 1 EPERM).</summary>
public sealed class NetlinkException(int errno, string message) : IOException($"{message}: errno {errno}")
{
    public int Errno { get; } = errno;

    public const int ENOENT = 2;
    public const int EPERM = 1;
    public const int EINVAL = 22;
    public const int ENODEV = 19;
    public const int EOPNOTSUPP = 95;
}
