using System.Security.Cryptography;
using System.Text.Json.Nodes;
using WhaleWall.Firewall.Kernel;

namespace WhaleWall.TestSupport;

/// <summary>A "container" of a <see cref="BridgeLab"/>: its own namespace, joined to a bridge of
/// the lab's host namespace by a veth pair (<see cref="Port"/> is the host-side end).</summary>
public sealed record LabContainer(string Name, string NsPath, string Bridge, string Port, int PortIndex,
    string Mac, string Ip4, string Ip6, string LinkLocal, int EthIndex)
{
    /// <summary>The link-local address with its scope (eth0's index inside the container).</summary>
    public string LinkLocalScoped => $"{LinkLocal}%{EthIndex}";
}

/// <summary>
/// Throw-away namespaces shaped like a Docker host (all names <c>wwb-XXXXXX-*</c>):
/// <code>
///  host ns ("h"): bridge br0 198.18.30.1/24 2001:db8:30::1/64   (guarded in the tests)
///                 bridge br1 198.18.31.1/24 2001:db8:31::1/64   (a network with no managed container)
///                 veth wan0 198.18.40.1/24 2001:db8:40::1/64 ── internet ns ("i"): 198.18.40.2, 2001:db8:40::2
///  container ns ("cN"): eth0 on br0 or br1, 198.18.30.N / 2001:db8:30::N, MAC 02:42:c6:12:1e:NN,
///                       routes to the internet link via the bridge
/// </code>
/// The host namespace forwards; every namespace has the blackhole for the test supernet.
/// <see cref="Nft"/> is libnftables bound to the host namespace. Dispose deletes exactly these
/// namespaces (and so the veths, bridges and tables in them).
/// </summary>
public sealed class BridgeLab : IDisposable
{
    public const string Bridge0 = "br0", Bridge1 = "br1";
    public const string Gateway0v4 = "198.18.30.1", Gateway0v6 = "2001:db8:30::1";
    public const string Gateway1v4 = "198.18.31.1", Gateway1v6 = "2001:db8:31::1";
    public const string Subnet0v4 = "198.18.30.0/24", Subnet0v6 = "2001:db8:30::/64";
    public const string Subnet1v4 = "198.18.31.0/24", Subnet1v6 = "2001:db8:31::/64";
    public const string InternetIp4 = "198.18.40.2", InternetIp6 = "2001:db8:40::2";

    private readonly List<string> _created = new();
    private readonly List<LabContainer> _containers = new();
    private LibNftables? _nft;
    private bool _disposed;

    public string Id { get; }
    public string HostName { get; }
    public string InternetName { get; }
    public string HostNs => Netns.Named(HostName);
    public string InternetNs => Netns.Named(InternetName);
    public IReadOnlyList<LabContainer> Containers => _containers;

    /// <summary>libnftables bound to the host namespace (created on first use).</summary>
    public LibNftables Nft => _nft ??= new LibNftables(HostNs);

    public BridgeLab(bool withInternet = true)
    {
        Id = Convert.ToHexString(RandomNumberGenerator.GetBytes(3)).ToLowerInvariant();
        HostName = $"wwb-{Id}-h";
        InternetName = $"wwb-{Id}-i";
        try { Build(withInternet); }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void Build(bool withInternet)
    {
        AddNamespace(HostName);
        Sysctl(HostName, "net.ipv4.ip_forward=1");
        Sysctl(HostName, "net.ipv6.conf.all.forwarding=1");
        foreach (var (br, v4, v6) in new[] { (Bridge0, Gateway0v4, Gateway0v6), (Bridge1, Gateway1v4, Gateway1v6) })
        {
            Ip(HostName, "link", "add", br, "type", "bridge");
            Ip(HostName, "addr", "add", v4 + "/24", "dev", br);
            Ip(HostName, "-6", "addr", "add", v6 + "/64", "dev", br, "nodad");
            Ip(HostName, "link", "set", br, "up");
        }
        if (withInternet)
        {
            AddNamespace(InternetName);
            Ip(HostName, "link", "add", "wan0", "type", "veth", "peer", "name", "eth0", "netns", InternetName);
            Ip(HostName, "addr", "add", "198.18.40.1/24", "dev", "wan0");
            Ip(HostName, "-6", "addr", "add", "2001:db8:40::1/64", "dev", "wan0", "nodad");
            Ip(HostName, "link", "set", "wan0", "up");
            Ip(InternetName, "addr", "add", InternetIp4 + "/24", "dev", "eth0");
            Ip(InternetName, "-6", "addr", "add", InternetIp6 + "/64", "dev", "eth0", "nodad");
            Ip(InternetName, "link", "set", "eth0", "up");
            Ip(InternetName, "route", "add", "198.18.30.0/23", "via", "198.18.40.1");
            Ip(InternetName, "-6", "route", "add", Subnet0v6, "via", "2001:db8:40::1");
            Ip(InternetName, "-6", "route", "add", Subnet1v6, "via", "2001:db8:40::1");
        }
    }

    /// <summary>A new container namespace on <paramref name="bridge"/> with host number
    /// <paramref name="n"/> (2-250): addresses .N / ::N, MAC 02:42:c6:12:1e:NN (br0) or
    /// 02:42:c6:12:1f:NN (br1), like Docker's MACs derived from the address.</summary>
    public LabContainer AddContainer(int n, string bridge = Bridge0, string? mac = null)
    {
        var net = bridge == Bridge0 ? 30 : 31;
        var name = $"wwb-{Id}-c{n}";
        AddNamespace(name);
        // no router advertisements accepted unless a test says so; forwarding off (a host, not a router)
        var port = $"wb{Id}p{n}";
        mac ??= $"02:42:c6:12:{net:x2}:{n:x2}";
        Ip(HostName, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name);
        Ip(HostName, "link", "set", port, "master", bridge);
        Ip(HostName, "link", "set", port, "up");
        Ip(name, "link", "set", "eth0", "address", mac);
        Ip(name, "addr", "add", $"198.18.{net}.{n}/24", "dev", "eth0");
        Ip(name, "-6", "addr", "add", $"2001:db8:{net}::{n:x}/64", "dev", "eth0", "nodad");
        Ip(name, "link", "set", "eth0", "up");
        // the internet link (inside the test supernet, so the blackhole would win over a default route)
        Ip(name, "route", "add", "198.18.40.0/24", "via", $"198.18.{net}.1");
        Ip(name, "-6", "route", "add", "2001:db8:40::/64", "via", $"2001:db8:{net}::1");
        var c = new LabContainer(name, Netns.Named(name), bridge, port, IfIndex(HostName, port), mac,
            $"198.18.{net}.{n}", $"2001:db8:{net}::{n:x}", Eui64LinkLocal(mac), IfIndex(name, "eth0"));
        WaitLinkLocal(c);
        _containers.Add(c);
        return c;
    }

    /// <summary>Deletes a container's namespace (its veth pair goes with it).</summary>
    public void RemoveContainer(LabContainer c)
    {
        Shell.Try("ip", "netns", "del", c.Name);
        _created.Remove(c.Name);
        _containers.Remove(c);
        // the host end disappears with the namespace's end; wait until the kernel has done it
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (Shell.Try("ip", "-n", HostName, "link", "show", c.Port).Code == 0 && DateTime.UtcNow < deadline) Thread.Sleep(20);
    }

    public static string Eui64LinkLocal(string mac)
    {
        var b = mac.Split(':').Select(h => Convert.ToByte(h, 16)).ToArray();
        return $"fe80::{(b[0] ^ 2) << 8 | b[1]:x}:{b[2]:x}ff:fe{b[3]:x2}:{b[4] << 8 | b[5]:x}";
    }

    private void WaitLinkLocal(LabContainer c)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (true)
        {
            var shown = Ip(c.Name, "-6", "addr", "show", "dev", "eth0", "scope", "link");
            if (shown.Contains(System.Net.IPAddress.Parse(c.LinkLocal).ToString()) && !shown.Contains("tentative")) return;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{c.Name}: no link-local {c.LinkLocal}: {shown}");
            Thread.Sleep(20);
        }
    }

    /// <summary>The host's link-local address on a bridge (it appears once the bridge has a port up).</summary>
    public string BridgeLinkLocal(string bridge)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (true)
        {
            var json = JsonNode.Parse(Ip(HostName, "-j", "-6", "addr", "show", "dev", bridge))!.AsArray();
            var found = json.SelectMany(l => l?["addr_info"] as JsonArray ?? [])
                .FirstOrDefault(a => a?["local"] is JsonValue v && v.GetValue<string>().StartsWith("fe80:") && a["tentative"] is null);
            if (found is not null) return found["local"]!.GetValue<string>();
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{bridge} has no link-local address");
            Thread.Sleep(20);
        }
    }

    public int IfIndex(string nsName, string dev)
    {
        var json = JsonNode.Parse(Ip(nsName, "-j", "link", "show", "dev", dev))!;
        return json[0]!["ifindex"]!.GetValue<int>();
    }

    /// <summary>The ifindex of a link of the host namespace (e.g. a bridge).</summary>
    public int HostIfIndex(string dev) => IfIndex(HostName, dev);

    private void AddNamespace(string ns)
    {
        Shell.Run("ip", "netns", "add", ns);
        _created.Add(ns);
        Ip(ns, "link", "set", "lo", "up");
        Ip(ns, "route", "add", "blackhole", TestNet.Supernet4, "metric", TestNet.BlackholeMetric.ToString());
        Ip(ns, "-6", "route", "add", "blackhole", TestNet.Supernet6, "metric", TestNet.BlackholeMetric.ToString());
        Sysctl(ns, "net.ipv6.conf.all.accept_dad=0");
        Sysctl(ns, "net.ipv6.conf.default.accept_dad=0");
        Sysctl(ns, "net.ipv6.conf.all.accept_ra=0");
        Sysctl(ns, "net.ipv6.conf.default.accept_ra=0");
    }

    /// <summary>`ip -n NS args...` (NS one of this lab's namespace names).</summary>
    public string Ip(string nsName, params string[] args)
    {
        EnsureOwn(nsName);
        return Shell.Run("ip", ["-n", nsName, .. args]);
    }

    /// <summary>`ip netns exec NS program args...`.</summary>
    public string Exec(string nsName, string program, params string[] args)
    {
        EnsureOwn(nsName);
        return Shell.Run("ip", ["netns", "exec", nsName, program, .. args]);
    }

    public void Sysctl(string nsName, string setting) => Exec(nsName, "sysctl", "-q", "-w", setting);

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
