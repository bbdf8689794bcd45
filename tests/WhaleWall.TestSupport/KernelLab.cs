using System.Security.Cryptography;
using WhaleWall.Firewall.Kernel;

namespace WhaleWall.TestSupport;

/// <summary>
/// Three throw-away network namespaces — client, firewall/router, server — made with
/// `ip netns add wwk-XXXXXX-{cli,fw,srv}` and joined by veth pairs created inside them
/// (nothing is ever created in, or routed through, the root namespace):
/// <code>
///  cli: eth0 198.18.10.2/24 2001:db8:10::2/64 ── fw: cli0 198.18.10.1 2001:db8:10::1
///                                                 fw: srv0 198.18.20.1 2001:db8:20::1 ── srv: eth0 198.18.20.2/24 2001:db8:20::2/64
/// </code>
/// The router forwards (IPv4 and IPv6). Every namespace has lo up and
/// `blackhole 198.18.0.0/15 metric 4000`. <see cref="Nft"/> is a libnftables context bound
/// to the router namespace. Dispose deletes exactly these namespaces.
/// </summary>
public sealed class KernelLab : IDisposable
{
    public const string ClientIp4 = "198.18.10.2";
    public const string ClientIp6 = "2001:db8:10::2";
    public const string RouterClientSideIp4 = "198.18.10.1";
    public const string RouterClientSideIp6 = "2001:db8:10::1";
    public const string RouterServerSideIp4 = "198.18.20.1";
    public const string RouterServerSideIp6 = "2001:db8:20::1";
    public const string ServerIp4 = "198.18.20.2";
    public const string ServerIp6 = "2001:db8:20::2";
    public const string ClientSubnet4 = "198.18.10.0/24";
    public const string ClientSubnet6 = "2001:db8:10::/64";
    public const string ServerSubnet4 = "198.18.20.0/24";
    public const string ServerSubnet6 = "2001:db8:20::/64";

    /// <summary>Interface names: client's and server's uplink, router's two legs.</summary>
    public const string ClientIf = "eth0", ServerIf = "eth0", RouterClientIf = "cli0", RouterServerIf = "srv0";

    private readonly List<string> _created = new();
    private LibNftables? _nft;
    private bool _disposed;

    public string Id { get; }
    public string ClientName { get; }
    public string RouterName { get; }
    public string ServerName { get; }
    public string ClientNs => Netns.Named(ClientName);
    public string RouterNs => Netns.Named(RouterName);
    public string ServerNs => Netns.Named(ServerName);

    /// <summary>libnftables bound to the router namespace (created on first use).</summary>
    public LibNftables Nft => _nft ??= new LibNftables(RouterNs);

    public KernelLab()
    {
        Id = Convert.ToHexString(RandomNumberGenerator.GetBytes(3)).ToLowerInvariant();
        ClientName = $"wwk-{Id}-cli";
        RouterName = $"wwk-{Id}-fw";
        ServerName = $"wwk-{Id}-srv";
        try { Build(); }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void Build()
    {
        foreach (var ns in new[] { ClientName, RouterName, ServerName })
        {
            Shell.Run("ip", "netns", "add", ns);
            _created.Add(ns);
            Ip(ns, "link", "set", "lo", "up");
            Ip(ns, "route", "add", "blackhole", "198.18.0.0/15", "metric", "4000");
            // No duplicate address detection: addresses (link-local ones too) are usable at
            // once instead of staying "tentative" for a second or two.
            Sysctl(ns, "net.ipv6.conf.all.accept_dad=0");
            Sysctl(ns, "net.ipv6.conf.default.accept_dad=0");
        }

        // veth pairs are created inside the router namespace, peers moved straight into the
        // client/server namespaces: they never exist in the root namespace.
        Ip(RouterName, "link", "add", RouterClientIf, "type", "veth", "peer", "name", ClientIf, "netns", ClientName);
        Ip(RouterName, "link", "add", RouterServerIf, "type", "veth", "peer", "name", ServerIf, "netns", ServerName);

        Sysctl(RouterName, "net.ipv4.ip_forward=1");
        Sysctl(RouterName, "net.ipv6.conf.all.forwarding=1");

        Ip(RouterName, "addr", "add", RouterClientSideIp4 + "/24", "dev", RouterClientIf);
        Ip(RouterName, "-6", "addr", "add", RouterClientSideIp6 + "/64", "dev", RouterClientIf, "nodad");
        Ip(RouterName, "addr", "add", RouterServerSideIp4 + "/24", "dev", RouterServerIf);
        Ip(RouterName, "-6", "addr", "add", RouterServerSideIp6 + "/64", "dev", RouterServerIf, "nodad");
        Ip(RouterName, "link", "set", RouterClientIf, "up");
        Ip(RouterName, "link", "set", RouterServerIf, "up");

        Ip(ClientName, "addr", "add", ClientIp4 + "/24", "dev", ClientIf);
        Ip(ClientName, "-6", "addr", "add", ClientIp6 + "/64", "dev", ClientIf, "nodad");
        Ip(ClientName, "link", "set", ClientIf, "up");
        Ip(ClientName, "route", "add", ServerSubnet4, "via", RouterClientSideIp4);
        Ip(ClientName, "-6", "route", "add", ServerSubnet6, "via", RouterClientSideIp6);

        Ip(ServerName, "addr", "add", ServerIp4 + "/24", "dev", ServerIf);
        Ip(ServerName, "-6", "addr", "add", ServerIp6 + "/64", "dev", ServerIf, "nodad");
        Ip(ServerName, "link", "set", ServerIf, "up");
        Ip(ServerName, "route", "add", ClientSubnet4, "via", RouterServerSideIp4);
        Ip(ServerName, "-6", "route", "add", ClientSubnet6, "via", RouterServerSideIp6);

        WaitForIpv6Addresses();
    }

    private void WaitForIpv6Addresses()
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        foreach (var ns in _created)
            while (Ip(ns, "-6", "addr", "show", "tentative").Trim().Length > 0)
            {
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"IPv6 addresses in {ns} stay tentative");
                Thread.Sleep(20);
            }
    }

    /// <summary>`ip -n NS args...` (NS one of this lab's namespace names).</summary>
    public string Ip(string nsName, params string[] args)
    {
        EnsureOwn(nsName);
        return Shell.Run("ip", ["-n", nsName, .. args]);
    }

    /// <summary>`ip netns exec NS program args...` (NS one of this lab's namespace names).</summary>
    public string Exec(string nsName, string program, params string[] args)
    {
        EnsureOwn(nsName);
        return Shell.Run("ip", ["netns", "exec", nsName, program, .. args]);
    }

    private void Sysctl(string nsName, string setting) => Exec(nsName, "sysctl", "-q", "-w", setting);

    private void EnsureOwn(string nsName)
    {
        if (!_created.Contains(nsName))
            throw new InvalidOperationException($"{nsName} is not a namespace of this lab");
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try { _nft?.Dispose(); } catch { /* best effort */ }
        foreach (var ns in _created.AsEnumerable().Reverse())
            Shell.Try("ip", "netns", "del", ns);
        _created.Clear();
    }
}
