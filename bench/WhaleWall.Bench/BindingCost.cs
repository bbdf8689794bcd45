using System.Diagnostics;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using WhaleWall.Firewall.Binding;
using WhaleWall.Firewall.Kernel;
using WhaleWall.TestSupport;

namespace WhaleWall.Bench;

/// <summary>What binding containers to their bridge ports costs (docs/binding.md): packets
/// bridged between two "containers" on one bridge (both bound, their network guarded) with no
/// bridge table, with the two bindings only, and with 10,000 bindings present; then adding and
/// removing one binding with 10,000 present, and loading 10,000 from nothing. Same method as
/// <see cref="Datapath"/>: alternating rounds, medians of per-round ratios.</summary>
public static class BindingCost
{
    private const string Client = "198.19.250.2", Server = "198.19.250.3", Subnet = "198.19.250.0/24";
    private const int IperfPort = 5201, RatePort = 8080;

    public static async Task RunAsync(Ctx ctx)
    {
        var h = ctx.NsPrefix + "bh";
        var c = ctx.NsPrefix + "bc";
        var s = ctx.NsPrefix + "bs";
        var (clientPort, serverPort, clientMac, serverMac) = SetUp(h, c, s);

        var iperfLog = Path.Combine(ctx.ArtifactsDir, "bench-binding-iperf3-server.log");
        var iperf = E2eProcess.StartLogged(iperfLog, null, "nsenter", "--net=" + Netns.Named(s), "iperf3", "-s", "-B", Server, "-p", IperfPort.ToString());
        Cleanup.Register("iperf3 server (binding)", () => E2eProcess.TerminateAsync(iperf.Id, TimeSpan.FromSeconds(5)).GetAwaiter().GetResult());
        using var rateServer = TcpServer.Start(Netns.Named(s), Server, RatePort);
        await Task.Delay(500);

        using var nft = new LibNftables(Netns.Named(h)); // the table lives in the bench's namespace
        var table = ctx.Table;
        Must(nft, BridgeLayout.RawSetDeclarations(table));
        var own = new[]
        {
            PortBinding.Of(clientPort, clientMac, IPAddress.Parse(Client), null),
            PortBinding.Of(serverPort, serverMac, IPAddress.Parse(Server), null),
        }.SelectMany(BridgeLayout.Elements).Append(BridgeLayout.Element(new GuardedSubnet(IPNetwork.Parse(Subnet)))).ToList();
        var big = ctx.Short ? 1_000 : 10_000;
        var many = own.Concat(Enumerable.Range(0, big - 2).SelectMany(i => BridgeLayout.Elements(Synthetic(i)))).ToList();

        // 10,000 bindings from nothing, and one added / removed with them present
        var load = Stopwatch.StartNew();
        Must(nft, BridgeLayout.FullTable(table, many));
        load.Stop();
        var adds = new List<double>();
        var removes = new List<double>();
        for (var i = 0; i < (ctx.Short ? 20 : 200); i++)
        {
            var one = BridgeLayout.Elements(Synthetic(50_000 + i)).ToList();
            var sw = Stopwatch.StartNew();
            Must(nft, BridgeLayout.Changes(table, [], one));
            adds.Add(sw.Elapsed.TotalMilliseconds);
            sw.Restart();
            Must(nft, BridgeLayout.Changes(table, one, []));
            removes.Add(sw.Elapsed.TotalMilliseconds);
        }
        ctx.Report.Add($"Binding: {big:N0} bindings ({many.Count:N0} elements) loaded from nothing, one transaction", Stats.Ms(load.Elapsed.TotalMilliseconds), "");
        ctx.Report.Add($"Binding: one container bound / unbound ({BridgeLayout.Elements(Synthetic(0)).Count()} elements) with {big:N0} present",
            $"add {Stats.P50P99(adds)}; remove {Stats.P50P99(removes)}", "< 5 ms both ways (p99)", Stats.Percentile(adds, 99) < 5 && Stats.Percentile(removes, 99) < 5);

        var configs = new List<(string Name, List<BridgeElement>? Elements)>
        {
            ("no bridge table", null),
            ("bridge table, 2 bindings", own),
            ($"bridge table, {big:N0} bindings", many),
        };
        var seconds = ctx.Short ? 1 : 2;
        var rounds = ctx.Short ? 1 : 9;
        var throughput = configs.ToDictionary(x => x.Name, _ => new List<double>());
        var rate = configs.ToDictionary(x => x.Name, _ => new List<double>());
        for (var round = 0; round < rounds; round++)
        foreach (var (name, elements) in configs)
        {
            Must(nft, BridgeLayout.DeleteTable(table));
            if (elements is not null)
            {
                Must(nft, BridgeLayout.RawSetDeclarations(table));
                Must(nft, BridgeLayout.FullTable(table, elements));
            }
            var gbps = Iperf(c, seconds);
            var perSecond = ConnectRate(c, 1);
            throughput[name].Add(gbps);
            rate[name].Add(perSecond);
            ctx.Log($"binding datapath {name}: {gbps:0.00} Gbit/s, {perSecond:0} connections/s");
        }
        // the check that the measured packets did go through the binding: a spoofed source is dropped
        if (!SpoofIsDropped(c, nft, table, many))
            throw new InvalidOperationException("binding check failed: a frame with a foreign source address passed the bridge table");
        Must(nft, BridgeLayout.DeleteTable(table));

        List<double> Ratios(Dictionary<string, List<double>> d, string name) => d[name].Zip(d[configs[0].Name], (a, b) => a / b).ToList();
        ctx.Report.Add("Binding datapath: iperf3 TCP between two containers on one bridge, no bridge table",
            $"{Stats.Median(throughput[configs[0].Name]):0.00} Gbit/s; {Stats.Median(rate[configs[0].Name]):0} connections/s", "");
        foreach (var (name, _) in configs.Skip(1))
        {
            var tp = Ratios(throughput, name);
            var rt = Ratios(rate, name);
            var isBig = name == configs[^1].Name;
            ctx.Report.Add($"Binding datapath: {name}, throughput / connections per s, ratio to no bridge table",
                $"**{Stats.Median(tp):0.00}** / **{Stats.Median(rt):0.00}** (per-round {tp.Min():0.00}-{tp.Max():0.00} / {rt.Min():0.00}-{rt.Max():0.00})",
                isBig ? ">= 0.95" : "", isBig ? Stats.Median(tp) >= 0.95 && Stats.Median(rt) >= 0.95 : null);
        }
        ctx.Report.Note("Binding datapath check: with the bridge table loaded, a frame from the client's port with another container's source address was dropped (so the measured frames did go through the binding rules).");
    }

    /// <summary>Binding i of the synthetic population: a port index no link has, a MAC and
    /// addresses no real container has.</summary>
    private static PortBinding Synthetic(int i) => PortBinding.Of(1_000_000 + i,
        new PhysicalAddress([0x02, 0x42, 0xc6, (byte)(i >> 16), (byte)(i >> 8), (byte)i]),
        IPAddress.Parse($"198.18.{10 + i / 250 % 230}.{2 + i % 250}"),
        IPAddress.Parse($"2001:db8:fb:{i >> 16:x}::{i & 0xffff:x}"));

    private static (int ClientPort, int ServerPort, PhysicalAddress ClientMac, PhysicalAddress ServerMac) SetUp(string h, string c, string s)
    {
        foreach (var ns in new[] { h, c, s })
        {
            Shell.Run("ip", "netns", "add", ns);
            Cleanup.Register("namespace " + ns, () => Shell.Try("ip", "netns", "del", ns));
            Shell.Run("ip", "-n", ns, "link", "set", "lo", "up");
            Shell.Run("ip", "-n", ns, "route", "add", "blackhole", TestNet.Supernet4, "metric", TestNet.BlackholeMetric.ToString());
        }
        Shell.Run("ip", "-n", h, "link", "add", "br0", "type", "bridge");
        Shell.Run("ip", "-n", h, "link", "set", "br0", "up");
        var macs = new List<PhysicalAddress>();
        var ports = new List<int>();
        foreach (var (ns, ip, mac) in new[] { (c, Client, "02:42:c6:13:fa:02"), (s, Server, "02:42:c6:13:fa:03") })
        {
            var port = ns + "p";
            Shell.Run("ip", "-n", h, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns);
            Shell.Run("ip", "-n", h, "link", "set", port, "master", "br0");
            Shell.Run("ip", "-n", h, "link", "set", port, "up");
            Shell.Run("ip", "-n", ns, "link", "set", "eth0", "address", mac);
            Shell.Run("ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0");
            Shell.Run("ip", "-n", ns, "link", "set", "eth0", "up");
            var json = JsonNode.Parse(Shell.Run("ip", "-n", h, "-j", "link", "show", "dev", port))!;
            ports.Add(json[0]!["ifindex"]!.GetValue<int>());
            macs.Add(PhysicalAddress.Parse(mac.Replace(':', '-').ToUpperInvariant()));
        }
        return (ports[0], ports[1], macs[0], macs[1]);
    }

    private static bool SpoofIsDropped(string clientNs, LibNftables nft, string table, List<BridgeElement> elements)
    {
        Must(nft, BridgeLayout.DeleteTable(table));
        Must(nft, BridgeLayout.RawSetDeclarations(table));
        Must(nft, BridgeLayout.FullTable(table, elements));
        Shell.Run("ip", "-n", clientNs, "addr", "add", "198.19.250.77/32", "dev", "eth0");
        try { return !CanConnect(clientNs, "198.19.250.77"); }
        finally { Shell.Run("ip", "-n", clientNs, "addr", "del", "198.19.250.77/32", "dev", "eth0"); }
    }

    private static bool CanConnect(string clientNs, string source) => Netns.Run(Netns.Named(clientNs), () =>
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Parse(source), 0));
        try { return socket.ConnectAsync(IPAddress.Parse(Server), RatePort).Wait(TimeSpan.FromSeconds(1)); }
        catch (AggregateException) { return false; }
    });

    private static double Iperf(string clientNs, int seconds)
    {
        var output = Shell.Run("nsenter", "--net=" + Netns.Named(clientNs), "iperf3", "-c", Server, "-p", IperfPort.ToString(),
            "-t", seconds.ToString(), "-J");
        return JsonNode.Parse(output)!["end"]!["sum_received"]!["bits_per_second"]!.GetValue<double>() / 1e9;
    }

    private static double ConnectRate(string clientNs, int seconds) => Netns.Run(Netns.Named(clientNs), () =>
    {
        var end = IPEndPoint.Parse($"{Server}:{RatePort}");
        var buffer = new byte[16];
        var sw = Stopwatch.StartNew();
        var count = 0;
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.LingerState = new LingerOption(true, 0);
            socket.Connect(end);
            socket.Receive(buffer);
            count++;
        }
        return count / sw.Elapsed.TotalSeconds;
    });

    private static void Must(LibNftables nft, string command)
    {
        var r = nft.Run(command);
        if (!r.Ok) throw new InvalidOperationException("binding bench: " + r.Error);
    }
}
