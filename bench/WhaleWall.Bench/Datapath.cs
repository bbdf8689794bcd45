using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using WhaleWall.Firewall.Kernel;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using WhaleWall.TestSupport;

namespace WhaleWall.Bench;

/// <summary>Packets: client ns -> router ns (WhaleWall's table on its forward hook) -> server
/// ns. The client is an opted-in "container" allowed to the server's ports, so every new
/// connection goes through the set lookups; iperf3 measures throughput, a connect loop the
/// connection rate. No table vs 10 vs 10,000 containers' elements.</summary>
public static class Datapath
{
    private const string Client = "198.19.254.2", RouterC = "198.19.254.1";
    private const string Server = "198.19.255.2", RouterS = "198.19.255.1";
    private const int IperfPort = 5201, RatePort = 8080, DeniedPort = 8081;

    public static async Task RunAsync(Ctx ctx)
    {
        var c = ctx.NsPrefix + "c";
        var r = ctx.NsPrefix + "r";
        var s = ctx.NsPrefix + "s";
        SetUp(c, r, s);

        var iperfLog = Path.Combine(ctx.ArtifactsDir, "bench-iperf3-server.log");
        var iperf = E2eProcess.StartLogged(iperfLog, null, "nsenter", "--net=" + Netns.Named(s), "iperf3", "-s", "-B", Server, "-p", IperfPort.ToString());
        Cleanup.Register("iperf3 server", () => E2eProcess.TerminateAsync(iperf.Id, TimeSpan.FromSeconds(5)).GetAwaiter().GetResult());
        using var rateServer = TcpServer.Start(Netns.Named(s), Server, RatePort);
        using var deniedServer = TcpServer.Start(Netns.Named(s), Server, DeniedPort);
        await Task.Delay(500);

        using var lib = new LibNftables(Netns.Named(r));
        var nft = new TimedNftables(lib);
        // the table lives in the router namespace: deleting the namespace removes it

        var clientFacts = new ContainerFacts("client", "client", true,
            new Dictionary<string, string>
            {
                ["whalewall.enabled"] = "true",
                ["whalewall.rules"] = $"output:\n  - ips: [{Server}]\n    proto: tcp\n    dst_ports: [{IperfPort}, {RatePort}]\n",
            }.ToImmutableDictionaryOrdinal(),
            [new NetworkAttachment("bench", "benchnet", IPAddress.Parse(Client), null)], []);
        var client = Synthetic.Compile(clientFacts);
        int[] sizes = ctx.Short ? [10, 1000] : [10, 1000, 10_000];
        var configs = new List<(string Name, List<Element>? Elements)> { ("no table", null) };
        foreach (var size in sizes)
            configs.Add(($"{size:N0} containers", client.Elements.Concat(Synthetic.Fragments(size - 1).SelectMany(f => f.Elements)).ToList()));

        // Many short rounds, each measuring every configuration back to back: figures are the
        // median of the per-round ratios, which cancels slow drift from other load on the machine.
        var seconds = ctx.Short ? 1 : 2;
        var rounds = ctx.Short ? 1 : 9;
        var throughput = configs.ToDictionary(x => x.Name, _ => new List<double>());
        var rate = configs.ToDictionary(x => x.Name, _ => new List<double>());
        var deniedBlocked = new Dictionary<string, bool>();
        for (var round = 0; round < rounds; round++)
        foreach (var (name, elements) in configs)
        {
            nft.Must(NftJson.DeleteTable(ctx.Table));
            if (elements is not null) nft.Must(NftJson.FullTable(ctx.Table, elements));
            deniedBlocked[name] = !CanConnect(c, DeniedPort);
            var gbps = Iperf(c, seconds);
            var perSecond = ConnectRate(c, 1);
            throughput[name].Add(gbps);
            rate[name].Add(perSecond);
            ctx.Log($"datapath {name}: {gbps:0.00} Gbit/s, {perSecond:0} connections/s, denied port blocked: {deniedBlocked[name]}");
        }
        nft.Must(NftJson.DeleteTable(ctx.Table));

        if (deniedBlocked["no table"] || configs.Skip(1).Any(x => !deniedBlocked[x.Name]))
            throw new InvalidOperationException("datapath check failed: a denied port must pass without the table and be dropped with it");

        var tp0 = Stats.Median(throughput["no table"]);
        var rt0 = Stats.Median(rate["no table"]);
        ctx.Report.Add("Datapath: iperf3 TCP throughput client ns -> router ns -> server ns, no table",
            $"{tp0:0.00} Gbit/s (median of {rounds} x {seconds} s; range {throughput["no table"].Min():0.0}-{throughput["no table"].Max():0.0})", "");
        ctx.Report.Add("Datapath: TCP connections/s (connect, read, close; one client thread), no table",
            $"{rt0:0}/s (range {rate["no table"].Min():0}-{rate["no table"].Max():0})", "");
        List<double> Ratios(Dictionary<string, List<double>> d, string name, string to) =>
            d[name].Zip(d[to], (a, b) => a / b).ToList();
        foreach (var (name, _) in configs.Skip(1))
        {
            var isBig = name == configs[^1].Name;
            var tp = Ratios(throughput, name, "no table");
            var rt = Ratios(rate, name, "no table");
            var rtTo10 = Ratios(rate, name, configs[1].Name);
            ctx.Report.Add($"Datapath: throughput with WhaleWall's table holding {name}, ratio to no table",
                $"**{Stats.Median(tp):0.00}** (per-round ratios {tp.Min():0.00}-{tp.Max():0.00}; {Stats.Median(throughput[name]):0.00} Gbit/s)",
                isBig ? ">= 0.95 at 10,000" : "", isBig ? Stats.Median(tp) >= 0.95 : null);
            ctx.Report.Add($"Datapath: connections/s with the table holding {name}, ratio to no table / to 10 containers",
                $"{Stats.Median(rt):0.00} / **{Stats.Median(rtTo10):0.00}** (per-round {rtTo10.Min():0.00}-{rtTo10.Max():0.00}; {Stats.Median(rate[name]):0}/s)",
                isBig ? "independent of count (>= 0.95 of 10)" : "", isBig ? Stats.Median(rtTo10) >= 0.95 : null);
        }
        ctx.Report.Note($"Datapath check in every configuration: a connection to a port the client's policy does not allow (tcp/{DeniedPort}) passed with no table and was dropped with the table (so the measured packets did go through WhaleWall's rules).");
    }
    private static void SetUp(string c, string r, string s)
    {
        foreach (var ns in new[] { c, r, s })
        {
            Shell.Run("ip", "netns", "add", ns);
            Cleanup.Register("namespace " + ns, () => Shell.Try("ip", "netns", "del", ns));
            Shell.Run("ip", "-n", ns, "link", "set", "lo", "up");
            Shell.Run("ip", "-n", ns, "route", "add", "blackhole", TestNet.Supernet4, "metric", TestNet.BlackholeMetric.ToString());
        }
        Shell.Run("ip", "-n", c, "link", "add", c + "v", "type", "veth", "peer", "name", r + "c", "netns", r);
        Shell.Run("ip", "-n", s, "link", "add", s + "v", "type", "veth", "peer", "name", r + "s", "netns", r);
        Shell.Run("ip", "-n", c, "addr", "add", Client + "/30", "dev", c + "v");
        Shell.Run("ip", "-n", r, "addr", "add", RouterC + "/30", "dev", r + "c");
        Shell.Run("ip", "-n", r, "addr", "add", RouterS + "/30", "dev", r + "s");
        Shell.Run("ip", "-n", s, "addr", "add", Server + "/30", "dev", s + "v");
        foreach (var (ns, dev) in new[] { (c, c + "v"), (r, r + "c"), (r, r + "s"), (s, s + "v") })
            Shell.Run("ip", "-n", ns, "link", "set", dev, "up");
        Shell.Run("ip", "netns", "exec", r, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1");
        Shell.Run("ip", "-n", c, "route", "add", "198.19.255.0/30", "via", RouterC);
        Shell.Run("ip", "-n", s, "route", "add", "198.19.254.0/30", "via", RouterS);
    }

    private static double Iperf(string clientNs, int seconds)
    {
        var output = Shell.Run("nsenter", "--net=" + Netns.Named(clientNs), "iperf3", "-c", Server, "-p", IperfPort.ToString(),
            "-t", seconds.ToString(), "-J");
        var json = JsonNode.Parse(output)!;
        return json["end"]!["sum_received"]!["bits_per_second"]!.GetValue<double>() / 1e9;
    }

    private static bool CanConnect(string clientNs, int port) => Netns.Run(Netns.Named(clientNs), () =>
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try { return socket.ConnectAsync(IPAddress.Parse(Server), port).Wait(TimeSpan.FromSeconds(1)); }
        catch (AggregateException) { return false; }
    });

    private static double ConnectRate(string clientNs, int seconds) => Netns.Run(Netns.Named(clientNs), () =>
    {
        var end = IPEndPoint.Parse($"{Server}:{RatePort}");
        var buffer = new byte[16];
        var sw = Stopwatch.StartNew();
        var count = 0;
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.LingerState = new LingerOption(true, 0); // RST on close: no TIME_WAIT piling up on our side
            socket.Connect(end);
            socket.Receive(buffer);
            count++;
        }
        return count / sw.Elapsed.TotalSeconds;
    });
}

internal static class DictionaryExtensions
{
    public static System.Collections.Immutable.ImmutableDictionary<string, string> ToImmutableDictionaryOrdinal(this Dictionary<string, string> d) =>
        System.Collections.Immutable.ImmutableDictionary.CreateRange(StringComparer.Ordinal, d);
}
