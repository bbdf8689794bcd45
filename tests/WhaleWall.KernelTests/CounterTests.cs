using System.Collections.Immutable;
using System.Diagnostics;
using System.Net;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Metrics;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace WhaleWall.KernelTests;

/// <summary>Issue 7: the per-element counters of WhaleWall's table, with real packets, read
/// back and attributed to containers the way a scrape does; and what a scrape costs with
/// 1,000 containers' elements (printed, not asserted).</summary>
public sealed class CounterTests(ITestOutputHelper output)
{
    private static ContainerFacts Container(string id, IPAddress v4, IPAddress? v6, string rules) =>
        new(id, "c-" + id, true, new Dictionary<string, string> { [LabelKeys.Enabled] = "true", [LabelKeys.Rules] = rules }.ToImmutableDictionary(),
            [new NetworkAttachment("lab", "lab", v4, v6)], [], Image: "img:" + id);

    private static double Packets(ContainerFacts c, string direction, string verdict) =>
        WhaleWallMetrics.ContainerPackets.WithLabels(direction, verdict, c.ShortId, c.Name, c.Image ?? "", "", "").Value;

    [Fact]
    public void Accepted_and_dropped_packets_are_counted_for_the_sending_container()
    {
        using var lab = new KernelLab();
        using var s80 = TcpServer.Start(lab.ServerNs, "::", 80);
        var client = Container("counted-client", IPAddress.Parse(KernelLab.ClientIp4), IPAddress.Parse(KernelLab.ClientIp6),
            $"output:\n  - ips: [{KernelLab.ServerIp4}]\n    proto: tcp\n    dst_ports: [80]\n");
        // a second container (an address nobody uses) that must not see any of it
        var other = Container("counted-other", IPAddress.Parse("198.18.10.99"), null, "output: []");
        var fragments = new[] { client, other }.Select(c => Compiler.Compile(c, LabelParser.Decide(c.Labels), []).Fragment).ToList();
        Assert.True(lab.Nft.Run(NftJson.FullTable("whalewall", fragments.SelectMany(f => f.Elements))).Ok);

        var view = new DaemonView();
        view.Apply(new ContainerNotices.StateChanged(client.Id, client, ContainerState.Enforced));
        view.Apply(new ContainerNotices.StateChanged(other.Id, other, ContainerState.Enforced));
        using var reader = new LibNftablesReader(lab.RouterNs);
        var counters = new ContainerCounters(reader.Nft, "whalewall", view);
        counters.Update();
        var accepted0 = Packets(client, "egress", "accept");
        var dropped0 = Packets(client, "egress", "drop");

        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80));
        Assert.Equal(ProbeOutcome.TimedOut, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 81, TimeSpan.FromSeconds(1)));
        Assert.Equal(ProbeOutcome.TimedOut, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp6, 80, TimeSpan.FromSeconds(1)));
        counters.Update();

        output.WriteLine($"accepted {accepted0} -> {Packets(client, "egress", "accept")}, dropped {dropped0} -> {Packets(client, "egress", "drop")}");
        Assert.Equal(1, Packets(client, "egress", "accept") - accepted0); // the SYN; the rest is established
        Assert.True(Packets(client, "egress", "drop") - dropped0 >= 2, $"dropped: {Packets(client, "egress", "drop") - dropped0}");
        Assert.Equal(0, Packets(client, "ingress", "accept"));
        Assert.Equal(0, Packets(client, "ingress", "drop"));
        Assert.Equal(0, Packets(other, "egress", "drop"));
        Assert.Equal(0, Packets(other, "egress", "accept"));

        // a policy change re-creates the elements at zero: the exported counter does not go back
        var before = Packets(client, "egress", "accept");
        var changed = client with { Labels = client.Labels.SetItem(LabelKeys.Rules, $"output:\n  - ips: [{KernelLab.ServerSubnet4}]\n    proto: tcp\n    dst_ports: [80]\n") };
        var refreshed = Compiler.Compile(changed, LabelParser.Decide(changed.Labels), []).Fragment;
        Assert.True(lab.Nft.Run(NftJson.FullTable("whalewall", refreshed.Elements.Concat(fragments[1].Elements))).Ok);
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80));
        counters.Update();
        Assert.Equal(before + 1, Packets(client, "egress", "accept"));
    }

    [Fact]
    public void Drop_log_rules_sit_before_the_counted_drops_and_change_no_verdict()
    {
        using var lab = new KernelLab();
        using var s80 = TcpServer.Start(lab.ServerNs, "::", 80);
        var client = Container("logged", IPAddress.Parse(KernelLab.ClientIp4), IPAddress.Parse(KernelLab.ClientIp6),
            $"output:\n  - ips: [{KernelLab.ServerIp4}]\n    proto: tcp\n    dst_ports: [80]\n");
        var fragment = Compiler.Compile(client, LabelParser.Decide(client.Labels), []).Fragment;
        var built = lab.Nft.Run(NftJson.FullTable("whalewall", fragment.Elements, logDrops: true));
        Assert.True(built.Ok, built.Error);

        // egress goes to the chain of the source's shard (docs/nftables.md, "Shards")
        var shard = NftPlacement.ShardOf(WhaleWall.Firewall.Policy.AddressRange.Single(IPAddress.Parse(KernelLab.ClientIp4)).Lo);
        var text = lab.Exec(lab.RouterName, "nft", "list", "chain", "inet", "whalewall", $"egress4_{shard}");
        var log = text.IndexOf($"log prefix \"{NftLayout.DropOutLogPrefix}\"", StringComparison.Ordinal);
        var counted = text.IndexOf("ip saddr @dropout4 drop", StringComparison.Ordinal);
        Assert.True(log >= 0 && counted > log, text);

        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80));
        Assert.Equal(ProbeOutcome.TimedOut, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 81, TimeSpan.FromSeconds(1)));
        var counters = NftCounters.Read(lab.Nft.Run(NftJson.ListTable("whalewall")).Output);
        Assert.True(counters.Single(c => c.Element.StartsWith("dropout4 ")).Packets >= 1);
    }

    [Fact]
    public void Scrape_cost_with_1000_containers()
    {
        using var lab = new KernelLab();
        Measure(lab.RouterNs, lab.Nft, "whalewall", "a throw-away namespace");
    }

    /// <summary>The same in the host namespace, where a fresh namespace's per-transaction tax does
    /// not apply: only with WHALEWALL_BENCH_HOST_NS=1, in a table of its own (its rules only
    /// concern 198.18.64.0/22 and 2001:db8:64::/64), deleted afterwards.</summary>
    [Fact]
    public void Scrape_cost_with_1000_containers_in_the_host_namespace()
    {
        if (Environment.GetEnvironmentVariable("WHALEWALL_BENCH_HOST_NS") != "1")
        {
            output.WriteLine("set WHALEWALL_BENCH_HOST_NS=1 to measure in the host namespace");
            return;
        }
        var table = "wwbench_" + Guid.NewGuid().ToString("N")[..8];
        using var nft = new WhaleWall.Firewall.Kernel.LibNftables();
        try { Measure(null, nft, table, "the host namespace"); }
        finally { nft.Run(NftJson.DeleteTable(table)); }
    }

    private void Measure(string? ns, WhaleWall.Firewall.Kernel.LibNftables nft, string table, string where)
    {
        var view = new DaemonView();
        var elements = new List<Element>();
        for (var i = 0; i < 1000; i++)
        {
            var v4 = IPAddress.Parse($"198.18.{64 + i / 250}.{1 + i % 250}");
            var v6 = IPAddress.Parse($"2001:db8:64::{i + 1:x}");
            var c = Container($"bench{i:D4}", v4, v6, """
                output:
                  - ips: [198.19.0.10, 2001:db8:19::10]
                    proto: tcp
                    dst_ports: [80, 443]
                  - ips: [198.19.1.0/24]
                    proto: udp
                    dst_ports: [53]
                """);
            elements.AddRange(Compiler.Compile(c, LabelParser.Decide(c.Labels), []).Fragment.Elements);
            view.Apply(new ContainerNotices.StateChanged(c.Id, c, ContainerState.Enforced));
        }
        var build = Stopwatch.StartNew();
        var built = nft.Run(NftJson.FullTable(table, elements));
        Assert.True(built.Ok, built.Error);
        build.Stop();

        using var reader = new LibNftablesReader(ns);
        var counters = new ContainerCounters(reader.Nft, table, view);
        counters.Update(); // first: creates the series
        const int rounds = 10;
        var list = Stopwatch.StartNew();
        string json = "";
        for (var i = 0; i < rounds; i++) json = reader.Nft.Run(NftJson.ListTable(table)).Output;
        list.Stop();
        var perSet = Stopwatch.StartNew();
        string[] counted = [.. new[] { "out4", "out6", "peer4", "peer6", "pub4", "pub6", "local4", "local6", "in4", "in6", "dropout4", "dropout6", "dropin4", "dropin6" }
            .SelectMany(NftPlacement.PhysicalSets)];
        for (var i = 0; i < rounds; i++)
            foreach (var set in counted)
                Assert.True(reader.Nft.Run("{\"nftables\":[{\"list\":{\"set\":{\"family\":\"inet\",\"table\":\"" + table + "\",\"name\":\"" + set + "\"}}}]}").Ok);
        perSet.Stop();
        var parse = Stopwatch.StartNew();
        for (var i = 0; i < rounds; i++) NftCounters.Read(json);
        parse.Stop();
        var whole = Stopwatch.StartNew();
        for (var i = 0; i < rounds; i++) counters.Update();
        whole.Stop();
        var export = Stopwatch.StartNew();
        long bytes = 0;
        for (var i = 0; i < rounds; i++)
        {
            using var ms = new MemoryStream();
            Prometheus.Metrics.DefaultRegistry.CollectAndExportAsTextAsync(ms).GetAwaiter().GetResult(); // runs Update too
            bytes = ms.Length;
        }
        export.Stop();

        var line = $"scrape cost in {where}, 1,000 containers ({elements.Count} elements, {counters.LastElementCount} counted, listing {json.Length / 1024} KiB): " +
                   $"list table {list.Elapsed.TotalMilliseconds / rounds:F1} ms (the 14 counted sets one by one: {perSet.Elapsed.TotalMilliseconds / rounds:F1} ms), parse {parse.Elapsed.TotalMilliseconds / rounds:F1} ms, " +
                   $"update (list+parse+attribute) {whole.Elapsed.TotalMilliseconds / rounds:F1} ms, " +
                   $"full /metrics {export.Elapsed.TotalMilliseconds / rounds:F1} ms ({bytes / 1024} KiB of text); table build {build.ElapsedMilliseconds} ms";
        output.WriteLine(line);
        Console.WriteLine("[bench] " + line);
        Assert.Equal(elements.Count(e => e.Set.StartsWith("out") && e.Target is null || e.Set.StartsWith("drop")), counters.LastElementCount);
    }

    /// <summary>A read-only libnftables context of its own, like the daemon's scrape reader.</summary>
    private sealed class LibNftablesReader(string? ns) : IDisposable
    {
        public WhaleWall.Firewall.Kernel.LibNftables Nft { get; } = new(ns);
        public void Dispose() => Nft.Dispose();
    }
}
