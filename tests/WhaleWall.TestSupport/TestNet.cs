namespace WhaleWall.TestSupport;

/// <summary>
/// The end-to-end address plan. Everything lives inside network namespaces the test creates;
/// IPv4 only from 198.18.0.0/15, IPv6 only from 2001:db8::/32, plus loopback.
/// Never use the other documentation ranges: this machine's uplink and mirrors live there (Guard refuses them).
///
/// <code>
///   [host ns: dockerd, WhaleWall]  veth  [internet ns]
///   198.18.1.1/24  -------------------- 198.18.1.2/24
///   docker0 198.18.100.1/24              lo: 198.19.0.10, .11 (servers)
///   user networks 198.18.128.0/17 /24s       198.19.0.20, .21 (external clients)
///                                            198.19.0.53      (test DNS, later)
/// </code>
/// </summary>
public static class TestNet
{
    /// <summary>The test supernet; a blackhole route for it (metric 4000) exists in every namespace we use.</summary>
    public const string Supernet4 = "198.18.0.0/15";
    public const int BlackholeMetric = 4000;
    public const string Supernet6 = "2001:db8::/32";

    // host <-> internet link
    public const string HostLink4 = "198.18.1.1";
    public const string InternetLink4 = "198.18.1.2";
    public const int LinkPrefix4 = 24;
    public const string HostLink6 = "2001:db8:1::1";
    public const string InternetLink6 = "2001:db8:1::2";
    public const int LinkPrefix6 = 64;

    // the simulated internet (addresses on the internet namespace's loopback)
    public const string InternetPrefix4 = "198.19.0.0/24";
    public const string Server1 = "198.19.0.10";
    public const string Server2 = "198.19.0.11";
    public const string Client1 = "198.19.0.20";
    public const string Client2 = "198.19.0.21";
    public const string Dns = "198.19.0.53";
    public const string InternetPrefix6 = "2001:db8:19::/64";
    public const string Server1v6 = "2001:db8:19::10";
    public const string Server2v6 = "2001:db8:19::11";
    public const string Client1v6 = "2001:db8:19::20";
    public const string Client2v6 = "2001:db8:19::21";
    public const string Dnsv6 = "2001:db8:19::53";

    public static readonly string[] InternetAddresses4 = [Server1, Server2, Client1, Client2, Dns];
    public static readonly string[] InternetAddresses6 = [Server1v6, Server2v6, Client1v6, Client2v6, Dnsv6];

    // the test dockerd
    public const string DockerBip = "198.18.100.1/24";
    public const string DockerAddressPool = "198.18.128.0/17";
    public const int DockerAddressPoolSize = 24;

    // services the harness runs in the internet namespace
    public const int TcpPort = 80;
    public const int TcpPortOther = 81;
    public const int UdpPort = 5353;
    public const int UdpPortOther = 5354;

    /// <summary>True if an IPv4/IPv6 address literal lies inside the ranges tests may use.</summary>
    public static bool IsTestAddress(string ip)
    {
        if (!System.Net.IPAddress.TryParse(ip, out var a)) return false;
        if (System.Net.IPAddress.IsLoopback(a)) return true;
        var b = a.GetAddressBytes();
        if (b.Length == 4) return b[0] == 198 && (b[1] == 18 || b[1] == 19);
        return b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8;
    }

    /// <summary>Throws unless the address is a test address (guards every probe the harness sends).</summary>
    public static string Guard(string ip) =>
        IsTestAddress(ip) ? ip : throw new InvalidOperationException($"{ip} is not a test address (198.18.0.0/15, 2001:db8::/32, loopback)");
}
