using System.Collections.Immutable;
using System.Net;
using Akka.Actor;
using WhaleWall.Actors.Nft;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using NftResult = WhaleWall.Firewall.Nft.NftResult;
using WhaleWall.Firewall.Policy;
using WhaleWall.TestSupport;
using Xunit;

namespace WhaleWall.KernelTests;

/// <summary>WhaleWall's own table (compiled from labels) in a router namespace, with real
/// packets: the client namespace plays an opted-in container, the server one the internet.</summary>
public sealed class WhaleWallLayoutTests
{
    private const string Table = "whalewall";

    private static ContainerFacts Client(string? rules, bool enabled = true)
    {
        var labels = new Dictionary<string, string>();
        if (enabled) labels[LabelKeys.Enabled] = "true";
        if (rules is not null) labels[LabelKeys.Rules] = rules;
        return new ContainerFacts("client", "client", true, labels.ToImmutableDictionary(),
            [new NetworkAttachment("lab", "lab", IPAddress.Parse(KernelLab.ClientIp4), IPAddress.Parse(KernelLab.ClientIp6))], []);
    }

    private static void Apply(KernelLab lab, ContainerFacts facts)
    {
        var fragment = Compiler.Compile(facts, LabelParser.Decide(facts.Labels), []).Fragment;
        var result = lab.Nft.Run(NftJson.FullTable(Table, fragment.Elements));
        Assert.True(result.Ok, result.Error);
    }

    /// <summary>The out4 shard that holds an owner address's interval elements (NftPlacement).</summary>
    private static string OutShardOf(string address) =>
        NftPlacement.ShardName("out4", NftPlacement.ShardOf(AddressRange.Single(System.Net.IPAddress.Parse(address)).Lo));

    /// <summary>out* interval elements live in one of 16 sets picked by the owner address's low
    /// bits, and egress dispatches on the source's: a source in every shard, each with its own
    /// CIDR rule (an interval element), reaches its port and not the other one's, on both families.</summary>
    [Fact]
    public void Every_shard_of_egress_enforces_its_own_sources_policy()
    {
        using var lab = new KernelLab();
        using var s80 = TcpServer.Start(lab.ServerNs, "::", 80);
        using var s81 = TcpServer.Start(lab.ServerNs, "::", 81);
        var sources = Enumerable.Range(0, NftPlacement.Shards)
            .Select(k => (Shard: k, V4: $"198.18.10.{32 + k}", V6: $"2001:db8:10::{0x20 + k:x}", Port: 80 + k % 2)).ToList();
        var elements = new List<Element>();
        foreach (var (k, v4, v6, port) in sources)
        {
            lab.Ip(lab.ClientName, "addr", "add", v4 + "/32", "dev", KernelLab.ClientIf);
            lab.Ip(lab.ClientName, "-6", "addr", "add", v6 + "/128", "dev", KernelLab.ClientIf, "nodad");
            var rules = $"output:\n  - ips: [{KernelLab.ServerSubnet4}, {KernelLab.ServerSubnet6}]\n    proto: tcp\n    dst_ports: [{port}]\n";
            var facts = new ContainerFacts($"c{k}", $"c{k}", true,
                new Dictionary<string, string> { [LabelKeys.Enabled] = "true", [LabelKeys.Rules] = rules }.ToImmutableDictionary(),
                [new NetworkAttachment("lab", "lab", IPAddress.Parse(v4), IPAddress.Parse(v6))], []);
            var fragment = Compiler.Compile(facts, LabelParser.Decide(facts.Labels), []).Fragment;
            Assert.Contains(fragment.Elements, e => e.PhysicalSet == NftPlacement.ShardName("out4", k));
            Assert.Contains(fragment.Elements, e => e.PhysicalSet == NftPlacement.ShardName("out6", k));
            elements.AddRange(fragment.Elements);
        }
        var result = lab.Nft.Run(NftJson.FullTable(Table, elements));
        Assert.True(result.Ok, result.Error);

        // a first packet from a new source address waits for neighbour resolution on the way back,
        // which under load can outlast one probe: the allowed port is tried until it answers (or 10 s),
        // then the other port, with the neighbours known, must stay silent
        ProbeOutcome Allowed(string server, int port, string source)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            ProbeOutcome outcome;
            while ((outcome = Probe.Tcp(lab.ClientNs, server, port, sourceIp: source)) != ProbeOutcome.Connected && DateTime.UtcNow < deadline)
                Thread.Sleep(100);
            return outcome;
        }
        var outcomes = sources.AsParallel().WithDegreeOfParallelism(4).SelectMany(s => new[] { (s.V4, KernelLab.ServerIp4), (s.V6, KernelLab.ServerIp6) }
            .Select(p => (s.Shard, Source: p.Item1,
                Allowed: Allowed(p.Item2, s.Port, p.Item1),
                Other: Probe.Tcp(lab.ClientNs, p.Item2, 161 - s.Port, TimeSpan.FromMilliseconds(700), sourceIp: p.Item1)))).ToList();
        Assert.All(outcomes, o => Assert.True(o.Allowed == ProbeOutcome.Connected && o.Other == ProbeOutcome.TimedOut,
            $"shard {o.Shard}, {o.Source}: allowed port {o.Allowed}, other port {o.Other}"));
    }

    [Fact]
    public void Opted_in_container_reaches_only_what_its_rules_allow_on_both_families()
    {
        using var lab = new KernelLab();
        using var s80 = TcpServer.Start(lab.ServerNs, "::", 80);
        using var s81 = TcpServer.Start(lab.ServerNs, "::", 81);
        using var u53 = UdpEchoServer.Start(lab.ServerNs, "::", 5353);
        using var u54 = UdpEchoServer.Start(lab.ServerNs, "::", 5354);
        Apply(lab, Client($"""
            output:
              - ips: [{KernelLab.ServerIp4}, {KernelLab.ServerIp6}]
                proto: tcp
                dst_ports: [80]
              - ips: [{KernelLab.ServerSubnet4}, {KernelLab.ServerSubnet6}]
                proto: udp
                dst_ports: [5353]
            """));

        foreach (var server in new[] { KernelLab.ServerIp4, KernelLab.ServerIp6 })
        {
            var outcome = Probe.Tcp(lab.ClientNs, server, 80);
            Assert.True(outcome == ProbeOutcome.Connected, $"{server}: {outcome}\n{lab.Exec(lab.RouterName, "nft", "list", "ruleset")}");
            Assert.Equal(ProbeOutcome.TimedOut, Probe.Tcp(lab.ClientNs, server, 81, TimeSpan.FromSeconds(1)));
            Assert.True(Probe.UdpEcho(lab.ClientNs, server, 5353));
            Assert.False(Probe.UdpEcho(lab.ClientNs, server, 5354, TimeSpan.FromSeconds(1)));
        }
    }

    [Fact]
    public void Nothing_reaches_an_opted_in_container_that_it_did_not_start()
    {
        using var lab = new KernelLab();
        using var inside = TcpServer.Start(lab.ClientNs, "::", 8080);
        using var s80 = TcpServer.Start(lab.ServerNs, "::", 80);
        Apply(lab, Client($"output:\n  - ips: [{KernelLab.ServerIp4}]\n    proto: tcp\n    dst_ports: [80]\n"));

        Assert.Equal(ProbeOutcome.TimedOut, Probe.Tcp(lab.ServerNs, KernelLab.ClientIp4, 8080, TimeSpan.FromSeconds(1)));
        Assert.Equal(ProbeOutcome.TimedOut, Probe.Tcp(lab.ServerNs, KernelLab.ClientIp6, 8080, TimeSpan.FromSeconds(1)));
        // its own connection's replies are established traffic and pass
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80));
    }

    [Fact]
    public void Invalid_labels_block_everything_and_unlabeled_containers_are_left_alone()
    {
        using var lab = new KernelLab();
        using var s80 = TcpServer.Start(lab.ServerNs, "::", 80);
        Apply(lab, Client($"output:\n  - ips: [{KernelLab.ServerIp4}]\n    proto: tcp\n    dst_ports: [80]\n    typo: 1\n"));
        Assert.Equal(ProbeOutcome.TimedOut, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80, TimeSpan.FromSeconds(1)));

        Apply(lab, Client(null, enabled: false));
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80));
    }

    [Fact]
    public void Start_up_transaction_replaces_whatever_table_was_there()
    {
        using var lab = new KernelLab();
        // a stale element, and a set of an older incompatible layout
        Apply(lab, Client(null));
        Assert.True(lab.Nft.Run("""{"nftables":[{"add":{"element":{"family":"inet","table":"whalewall","name":"managed4","elem":["198.18.10.99"]}}}]}""").Ok);
        Apply(lab, Client(null, enabled: false));
        var listing = lab.Nft.Run(NftJson.ListTable(Table));
        Assert.True(listing.Ok, listing.Error);
        Assert.DoesNotContain("198.18.10.99", listing.Output);
        Assert.DoesNotContain(KernelLab.ClientIp4, listing.Output);
        Assert.Contains("\"hook\": \"forward\"", listing.Output.Replace("\"hook\":\"forward\"", "\"hook\": \"forward\""));
    }

    [Fact]
    public void Writer_actor_programs_the_kernel_and_removes_what_a_container_no_longer_needs()
    {
        using var lab = new KernelLab();
        using var s80 = TcpServer.Start(lab.ServerNs, "::", 80);
        var system = ActorSystem.Create("kernel", $"{NftWriterActor.DispatcherId} {{ type = PinnedDispatcher }}");
        try
        {
            var writer = system.ActorOf(NftWriterActor.Props(lab.Nft, Table));
            var facts = Client($"output:\n  - ips: [{KernelLab.ServerIp4}]\n    proto: tcp\n    dst_ports: [80]\n");
            var fragment = Compiler.Compile(facts, LabelParser.Decide(facts.Labels), []).Fragment;
            writer.Tell(new NftWriterCommands.ExpectOwners(["client"]));
            var applied = writer.Ask<NftWriterEvents.Applied>(new NftWriterCommands.Program(fragment, 1), TimeSpan.FromSeconds(10)).Result;
            Assert.Equal(1, applied.Version);
            Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80));

            var dropAll = fragment with { Elements = [.. fragment.Elements.Where(e => e.Set == "managed4" || e.Set == "managed6")] };
            writer.Ask<NftWriterEvents.Applied>(new NftWriterCommands.Program(dropAll, 2), TimeSpan.FromSeconds(10)).Wait();
            Assert.Equal(ProbeOutcome.TimedOut, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80, TimeSpan.FromSeconds(1)));

            writer.Ask<NftWriterEvents.Applied>(new NftWriterCommands.Program(Fragment.Empty("client"), 3), TimeSpan.FromSeconds(10)).Wait();
            Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80));
            Assert.DoesNotContain(KernelLab.ClientIp4, lab.Nft.Run(NftJson.ListTable(Table)).Output);
        }
        finally
        {
            system.Terminate().Wait();
        }
    }

    /// <summary>A container that goes leaves its interval elements for idle-time collection
    /// (KernelState.Garbage): its address is in managed4 no more, so nothing reads them; a new
    /// container on the same address gets them deleted in its own transaction and inherits
    /// nothing; collection later empties the sets.</summary>
    [Fact]
    public void A_new_container_on_a_departed_containers_address_inherits_nothing_it_left_for_collection()
    {
        using var lab = new KernelLab();
        using var s80 = TcpServer.Start(lab.ServerNs, "::", 80);
        using var s81 = TcpServer.Start(lab.ServerNs, "::", 81);
        var system = ActorSystem.Create("kernel", $"{NftWriterActor.DispatcherId} {{ type = PinnedDispatcher }}");
        try
        {
            var options = WriterOptions.Default with { CollectIdle = TimeSpan.FromSeconds(30) };
            var writer = system.ActorOf(NftWriterActor.Props(lab.Nft, Table, options: options));
            Fragment Compiled(string id, string rules)
            {
                var facts = Client(rules) with { Id = id };
                return Compiler.Compile(facts, LabelParser.Decide(facts.Labels), []).Fragment;
            }
            void Program(Fragment fragment, long version) =>
                writer.Ask<NftWriterEvents.Applied>(new NftWriterCommands.Program(fragment, version), TimeSpan.FromSeconds(10)).Wait();

            writer.Tell(new NftWriterCommands.ExpectOwners(["old"]));
            Program(Compiled("old", $"output:\n  - ips: [{KernelLab.ServerSubnet4}]\n    proto: tcp\n    dst_ports: [80]\n"), 1);
            Assert.Equal(ProbeOutcome.TimedOut, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 81, TimeSpan.FromSeconds(1)));
            Program(Fragment.Empty("old"), 2);
            // the /24 element waits for collection, the address is not under policy
            Assert.Contains(KernelLab.ClientIp4, lab.Nft.Run(NftJson.ListSet(Table, OutShardOf(KernelLab.ClientIp4))).Output);
            Assert.DoesNotContain(KernelLab.ClientIp4, lab.Nft.Run(NftJson.ListSet(Table, "managed4")).Output);

            Program(Compiled("new", $"output:\n  - ips: [{KernelLab.ServerIp4}]\n    proto: tcp\n    dst_ports: [81]\n"), 1);
            Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 81));
            Assert.Equal(ProbeOutcome.TimedOut, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80, TimeSpan.FromSeconds(1)));
            Assert.DoesNotContain(KernelLab.ClientIp4, lab.Nft.Run(NftJson.ListSet(Table, OutShardOf(KernelLab.ClientIp4))).Output);
        }
        finally
        {
            system.Terminate().Wait();
        }
    }

    /// <summary>A restart rebuilds the table over the one the last run left: that must cost what
    /// building it from nothing costs. Emptying a concatenated interval set with `flush set` deletes
    /// its elements one by one (60,000: 389 s, the bench's DNS part timed out behind it).</summary>
    [Fact]
    public void A_restart_over_a_full_table_costs_what_a_fresh_one_does()
    {
        using var lab = new KernelLab();
        Element ToSubnet(int i) => new("out4", [new Field(FieldKind.Ipv4, 0xC6120A02u + (uint)i, 0xC6120A02u + (uint)i),
            new Field(FieldKind.Ipv4, 0xC613C800u + (uint)(i % 50) * 256, 0xC613C800u + (uint)(i % 50) * 256 + 255), new Field(FieldKind.Proto, 6, 6),
            new Field(FieldKind.Port, 0, 65535), new Field(FieldKind.Port, 443, 443)]);
        var elements = Enumerable.Range(0, 10_000).Select(ToSubnet).ToList();
        var json = NftJson.FullTable(Table, elements);
        var fresh = System.Diagnostics.Stopwatch.StartNew();
        Assert.True(lab.Nft.Run(json).Ok);
        fresh.Stop();

        var again = System.Diagnostics.Stopwatch.StartNew();
        var result = lab.Nft.Run(NftJson.FullTable(Table, elements.Skip(1)));
        again.Stop();
        Assert.True(result.Ok, result.Error);
        Assert.True(again.Elapsed < TimeSpan.FromSeconds(2) + 3 * fresh.Elapsed,
            $"restart over 10,000 interval elements: {again.ElapsedMilliseconds} ms, from nothing {fresh.ElapsedMilliseconds} ms");
        Assert.DoesNotContain("\"198.18.10.2\"", lab.Nft.Run(NftJson.ListSet(Table, OutShardOf("198.18.10.2"))).Output);
        Assert.Contains("\"198.18.10.3\"", lab.Nft.Run(NftJson.ListSet(Table, OutShardOf("198.18.10.3"))).Output);
    }

    /// <summary>A table of the layout before out* was sharded holds its CIDR elements in one
    /// `out4` set: the start-up transaction over it deletes that set (nothing reads it any more)
    /// and enforces from the shards.</summary>
    [Fact]
    public void A_start_up_over_the_unsharded_layout_retires_its_out_set()
    {
        using var lab = new KernelLab();
        using var s80 = TcpServer.Start(lab.ServerNs, "::", 80);
        Assert.True(lab.Nft.Run(NftJson.FullTable(Table, [])).Ok);
        var old = NftLayout.SetDeclarations(Table).First(); // any declaration, renamed: the old out4 had out4's logical shape
        old["add"]!["set"]!["name"] = "out4";
        old["add"]!["set"]!["type"] = new System.Text.Json.Nodes.JsonArray("ipv4_addr", "ipv4_addr", "inet_proto", "inet_service", "inet_service");
        old["add"]!["set"]!["flags"] = new System.Text.Json.Nodes.JsonArray("interval");
        old["add"]!["set"]!["stmt"] = new System.Text.Json.Nodes.JsonArray(new System.Text.Json.Nodes.JsonObject { ["counter"] = null });
        var created = lab.Nft.Run("{\"nftables\":[" + old.ToJsonString() + "]}");
        Assert.True(created.Ok, created.Error);
        Assert.True(lab.Nft.Run($"{{\"nftables\":[{{\"add\":{{\"element\":{{\"family\":\"inet\",\"table\":\"{Table}\",\"name\":\"out4\",\"elem\":[{{\"concat\":[\"{KernelLab.ClientIp4}\",{{\"prefix\":{{\"addr\":\"198.18.20.0\",\"len\":24}}}},\"tcp\",{{\"range\":[0,65535]}},80]}}]}}}}}}]}}").Ok);

        Apply(lab, Client($"output:\n  - ips: [{KernelLab.ServerSubnet4}]\n    proto: tcp\n    dst_ports: [80]\n"));
        Assert.False(lab.Nft.Run(NftJson.ListSet(Table, "out4")).Ok); // gone, with its element
        Assert.Contains(KernelLab.ClientIp4, lab.Nft.Run(NftJson.ListSet(Table, OutShardOf(KernelLab.ClientIp4))).Output);
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80));
    }

    [Fact]
    public void What_a_departed_container_left_is_collected_once_the_writer_is_idle()
    {
        using var lab = new KernelLab();
        var system = ActorSystem.Create("kernel", $"{NftWriterActor.DispatcherId} {{ type = PinnedDispatcher }}");
        try
        {
            var options = WriterOptions.Default with { CollectIdle = TimeSpan.FromMilliseconds(200), CollectBatch = 1 };
            var writer = system.ActorOf(NftWriterActor.Props(lab.Nft, Table, options: options));
            var facts = Client($"output:\n  - ips: [{KernelLab.ServerSubnet4}, {KernelLab.ServerSubnet6}]\n    proto: tcp\n    dst_ports: [80]\n");
            var fragment = Compiler.Compile(facts, LabelParser.Decide(facts.Labels), []).Fragment;
            writer.Tell(new NftWriterCommands.ExpectOwners(["client"]));
            writer.Ask<NftWriterEvents.Applied>(new NftWriterCommands.Program(fragment, 1), TimeSpan.FromSeconds(10)).Wait();
            writer.Ask<NftWriterEvents.Applied>(new NftWriterCommands.Program(Fragment.Empty("client"), 2), TimeSpan.FromSeconds(10)).Wait();

            var deadline = DateTime.UtcNow.AddSeconds(10);
            string table;
            while ((table = lab.Nft.Run(NftJson.ListTable(Table)).Output).Contains(KernelLab.ClientIp4) || table.Contains(KernelLab.ClientIp6))
            {
                Assert.True(DateTime.UtcNow < deadline, "collected within 10 s:\n" + table);
                Thread.Sleep(50);
            }
        }
        finally
        {
            system.Terminate().Wait();
        }
    }
}

/// <summary>The parts of the rules language that need more than a plain set element.</summary>
public sealed class RulesLanguageKernelTests
{
    private const string Table = "whalewall";

    private static NftResult Apply(KernelLab lab, string rules)
    {
        var labels = new Dictionary<string, string> { [LabelKeys.Enabled] = "true", [LabelKeys.Rules] = rules };
        var facts = new ContainerFacts("client", "client", true, labels.ToImmutableDictionary(),
            [new NetworkAttachment("lab", "lab", IPAddress.Parse(KernelLab.ClientIp4), IPAddress.Parse(KernelLab.ClientIp6))], []);
        var decision = LabelParser.Decide(labels);
        Assert.IsType<PolicyDecision.Enforced>(decision);
        var fragment = Compiler.Compile(facts, decision, []).Fragment;
        return lab.Nft.Run(NftJson.FullTable(Table, fragment.Elements, fragment.ChainsOrEmpty));
    }

    private static string Ping(KernelLab lab, string target) =>
        Shell.Try("ip", "netns", "exec", lab.ClientName, "busybox", "ping", "-c", "1", "-W", "1", target).Code == 0 ? "reply" : "no reply";

    [Fact]
    public void Icmp_rule_allows_only_the_listed_types_on_its_own_family()
    {
        using var lab = new KernelLab();
        var result = Apply(lab, $"""
            output:
              - ips: [{KernelLab.ServerIp4}]
                proto: icmp
                icmp_types: [echo-request]
            """);
        Assert.True(result.Ok, result.Error);
        Assert.Equal("reply", Ping(lab, KernelLab.ServerIp4));
        Assert.Equal("no reply", Ping(lab, KernelLab.ServerIp6));

        Assert.True(Apply(lab, $"output:\n  - ips: [{KernelLab.ServerIp4}]\n    proto: icmp\n    icmp_types: [timestamp-request]\n").Ok);
        Assert.Equal("no reply", Ping(lab, KernelLab.ServerIp4));

        Assert.True(Apply(lab, $"output:\n  - ips: [{KernelLab.ServerIp6}]\n    proto: icmpv6\n").Ok);
        Assert.Equal("reply", Ping(lab, KernelLab.ServerIp6));
    }

    [Fact]
    public void Source_ports_are_matched_inclusively()
    {
        using var lab = new KernelLab();
        using var server = TcpServer.Start(lab.ServerNs, "::", 80);
        Assert.True(Apply(lab, $"output:\n  - ips: [{KernelLab.ServerIp4}]\n    proto: tcp\n    src_ports: [40000-40010]\n    dst_ports: [80]\n").Ok);
        Assert.Equal(ProbeOutcome.Connected, ProbeFromPort(lab, 40000));
        Assert.Equal(ProbeOutcome.Connected, ProbeFromPort(lab, 40010));
        Assert.Equal(ProbeOutcome.TimedOut, ProbeFromPort(lab, 40011));
        Assert.Equal(ProbeOutcome.TimedOut, ProbeFromPort(lab, 39999));
    }

    private static ProbeOutcome ProbeFromPort(KernelLab lab, int port) => Netns.Run(lab.ClientNs, () =>
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork,
            System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        socket.SetSocketOption(System.Net.Sockets.SocketOptionLevel.Socket, System.Net.Sockets.SocketOptionName.ReuseAddress, true);
        socket.Bind(new IPEndPoint(IPAddress.Parse(KernelLab.ClientIp4), port));
        try
        {
            return socket.ConnectAsync(IPAddress.Parse(KernelLab.ServerIp4), 80).Wait(TimeSpan.FromSeconds(1))
                ? ProbeOutcome.Connected : ProbeOutcome.TimedOut;
        }
        catch (AggregateException) { return ProbeOutcome.Refused; }
    });

    [Fact]
    public void Log_prefix_rule_goes_through_its_own_chain_and_still_allows()
    {
        using var lab = new KernelLab();
        using var s80 = TcpServer.Start(lab.ServerNs, "::", 80);
        using var s81 = TcpServer.Start(lab.ServerNs, "::", 81);
        var result = Apply(lab, $"output:\n  - ips: [{KernelLab.ServerIp4}]\n    proto: tcp\n    dst_ports: [80]\n    log_prefix: \"ww-web \"\n");
        Assert.True(result.Ok, result.Error);
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80));
        Assert.Equal(ProbeOutcome.TimedOut, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 81, TimeSpan.FromSeconds(1)));
        var listing = lab.Exec(lab.RouterName, "nft", "list", "table", "inet", Table);
        Assert.Contains("log prefix \"ww-web \"", listing);
        Assert.Contains("limit rate 10/second", listing);
    }

    [Fact]
    public void Verdict_chain_hands_new_traffic_to_the_operators_chain()
    {
        using var lab = new KernelLab();
        using var s80 = TcpServer.Start(lab.ServerNs, "::", 80);
        // the operator's chain lives in WhaleWall's table and survives WhaleWall's rebuilds
        Assert.True(lab.Nft.Run("""{"nftables":[{"add":{"table":{"family":"inet","name":"TABLE"}}},{"add":{"chain":{"family":"inet","table":"TABLE","name":"audit"}}},{"add":{"rule":{"family":"inet","table":"TABLE","chain":"audit","expr":[{"drop":null}]}}}]}""".Replace("TABLE", Table)).Ok);
        var result = Apply(lab, $"output:\n  - ips: [{KernelLab.ServerIp4}]\n    proto: tcp\n    dst_ports: [80]\n    verdict: {{ chain: audit }}\n");
        Assert.True(result.Ok, result.Error);
        Assert.Equal(ProbeOutcome.TimedOut, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80, TimeSpan.FromSeconds(1)));

        Assert.True(lab.Nft.Run("""{"nftables":[{"flush":{"chain":{"family":"inet","table":"TABLE","name":"audit"}}}]}""".Replace("TABLE", Table)).Ok);
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80));
    }

    [Fact]
    public void Queue_verdicts_are_refused_by_a_kernel_without_nfqueue_and_never_half_applied()
    {
        using var lab = new KernelLab();
        var probe = lab.Nft.Run("""{"nftables":[{"add":{"table":{"family":"inet","name":"probe"}}},{"add":{"chain":{"family":"inet","table":"probe","name":"c"}}},{"add":{"rule":{"family":"inet","table":"probe","chain":"c","expr":[{"queue":{"num":1}}]}}}]}""".Replace("TABLE", Table));
        var result = Apply(lab, $"output:\n  - ips: [{KernelLab.ServerIp4}]\n    proto: tcp\n    dst_ports: [80]\n    verdict: {{ queue: 1, input_est_queue: 2, output_est_queue: 3 }}\n");
        if (probe.Ok)
        {
            Assert.True(result.Ok, result.Error); // this kernel has NFQUEUE: the rules go in
            return;
        }
        Assert.False(result.Ok);
        Assert.DoesNotContain("whalewall", lab.Exec(lab.RouterName, "nft", "list", "tables")); // nothing half-built
    }
}

/// <summary>Deny-by-default mode in the kernel.</summary>
public sealed class GatewayKernelTests
{
    [Fact]
    public void Unknown_address_on_a_gateway_network_sends_nothing_until_its_policy_is_in()
    {
        using var lab = new KernelLab();
        using var server = TcpServer.Start(lab.ServerNs, "::", 80);
        var gateway = GatewayConfig.Parse("lab", "198.18.20.0/24");
        var networks = new[] { new DockerNetwork("lab", "lab", "bridge", [AddressSyntax.Parse(KernelLab.ClientSubnet4).Range!]) };
        var gw = Compiler.Gateways(networks, gateway);

        Assert.True(lab.Nft.Run(NftJson.FullTable("whalewall", gw.Elements)).Ok);
        Assert.Equal(ProbeOutcome.TimedOut, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80, TimeSpan.FromSeconds(1)));
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp6, 80)); // IPv6 subnet not a gateway one

        var client = new ContainerFacts("client", "client", true, ImmutableDictionary<string, string>.Empty,
            [new NetworkAttachment("lab", "lab", IPAddress.Parse(KernelLab.ClientIp4), null, 24)], []);
        var fragment = Compiler.Compile(client, ContainerDecider.Decide(new DecisionContext(gateway), client).Policy, []).Fragment;
        Assert.True(lab.Nft.Run(NftJson.FullTable("whalewall", gw.Elements.Concat(fragment.Elements))).Ok);
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80));
    }
}

/// <summary>Every valid generated policy is accepted by the kernel (a sample per run, applied
/// as one start-up transaction per policy in a throw-away namespace).</summary>
public sealed class GeneratedPolicyKernelTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public void Kernel_accepts_every_valid_generated_policy()
    {
        using var lab = new KernelLab();
        var peers = new[]
        {
            new ContainerFacts("db-id", "db", true, ImmutableDictionary<string, string>.Empty,
                [new NetworkAttachment("lab", "lab", IPAddress.Parse("198.18.10.3"), IPAddress.Parse("2001:db8:10::3"))], []),
        };
        // the operator's chain that `verdict: { chain: audit }` jumps to
        Assert.True(lab.Nft.Run("""{"nftables":[{"add":{"table":{"family":"inet","name":"whalewall"}}},{"add":{"chain":{"family":"inet","table":"whalewall","name":"audit"}}}]}""").Ok);
        var queueSupported = lab.Nft.Run("""{"nftables":[{"add":{"table":{"family":"inet","name":"qprobe"}}},{"add":{"chain":{"family":"inet","table":"qprobe","name":"c"}}},{"add":{"rule":{"family":"inet","table":"qprobe","chain":"c","expr":[{"queue":{"num":1}}]}}}]}""").Ok;
        int applied = 0, skippedQueue = 0;
        foreach (var yaml in FsCheck.Fluent.Gen.Sample(LabelGen.Policy, 400))
        {
            var labels = new Dictionary<string, string> { [LabelKeys.Enabled] = "true", [LabelKeys.Rules] = yaml }.ToImmutableDictionary();
            var self = new ContainerFacts("self", "self", true, labels,
                [new NetworkAttachment("lab", "lab", IPAddress.Parse(KernelLab.ClientIp4), IPAddress.Parse(KernelLab.ClientIp6))],
                [new PublishedPort(8080, L4Proto.Tcp, "0.0.0.0", 18080)]);
            var decision = LabelParser.Decide(labels);
            if (decision is not PolicyDecision.Enforced enforced) continue;
            var usesQueue = enforced.Policy.Output.Any(r => r.Action?.Verdict?.Queue is not null || r.Action?.Verdict?.InputEstQueue is not null);
            if (usesQueue && !queueSupported) { skippedQueue++; continue; }
            var fragment = Compiler.Compile(self, decision, peers).Fragment;
            var result = lab.Nft.Run(NftJson.FullTable("whalewall", fragment.Elements, fragment.ChainsOrEmpty,
                NftListing.ChainNames(lab.Nft.Run(NftJson.ListTable("whalewall")).Output).Where(NftListing.IsRuleChain)));
            Assert.True(result.Ok, $"kernel rejected a valid policy:\n{yaml}\n{result.Error}");
            applied++;
        }
        output.WriteLine($"{applied} valid generated policies applied; {skippedQueue} with queue verdicts not applicable (no NFQUEUE in this kernel)");
        Assert.True(applied >= 40, $"only {applied} valid policies in the sample");
    }
}

/// <summary>Addresses from DNS expire in the kernel by themselves.</summary>
public sealed class HostnameKernelTests
{
    [Fact]
    public void Resolved_address_is_allowed_until_its_expiry_then_the_kernel_drops_it_by_itself()
    {
        using var lab = new KernelLab();
        using var server = TcpServer.Start(lab.ServerNs, "::", 80);
        var labels = new Dictionary<string, string> { [LabelKeys.Enabled] = "true", [LabelKeys.Rules] = "output:\n  - hosts: [api.test.example]\n    proto: tcp\n    dst_ports: [80]\n" }.ToImmutableDictionary();
        var self = new ContainerFacts("client", "client", true, labels,
            [new NetworkAttachment("lab", "lab", IPAddress.Parse(KernelLab.ClientIp4), IPAddress.Parse(KernelLab.ClientIp6))], []);
        var now = DateTimeOffset.UtcNow;
        var hosts = new Dictionary<string, HostAddresses>
        {
            ["api.test.example"] = new("api.test.example", [(IPAddress.Parse(KernelLab.ServerIp4), now + TimeSpan.FromSeconds(3)), (IPAddress.Parse(KernelLab.ServerIp6), now + TimeSpan.FromSeconds(60))]),
        };
        var fragment = Compiler.Compile(self, LabelParser.Decide(labels), [], hosts).Fragment;
        var result = lab.Nft.Run(NftJson.FullTable("whalewall", fragment.Elements, fragment.ChainsOrEmpty, now: now));
        Assert.True(result.Ok, result.Error);
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80));
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp6, 80));

        Thread.Sleep(TimeSpan.FromSeconds(4));
        Assert.Equal(ProbeOutcome.TimedOut, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80, TimeSpan.FromSeconds(1)));
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp6, 80));
    }

    [Fact]
    public void Writer_renews_the_timeout_of_an_address_dns_still_gives()
    {
        using var lab = new KernelLab();
        using var server = TcpServer.Start(lab.ServerNs, "::", 80);
        var system = ActorSystem.Create("dns", $"{NftWriterActor.DispatcherId} {{ type = PinnedDispatcher }}");
        try
        {
            var writer = system.ActorOf(NftWriterActor.Props(lab.Nft, "whalewall"));
            writer.Tell(new NftWriterCommands.ExpectOwners([]));
            Fragment At(DateTimeOffset expires) => new("client",
            [
                new Element("managed4", [Field.Address(AddressRange.Single(IPAddress.Parse(KernelLab.ClientIp4)))]),
                new Element("outh4", [Field.Address(AddressRange.Single(IPAddress.Parse(KernelLab.ClientIp4))),
                    Field.Address(AddressRange.Single(IPAddress.Parse(KernelLab.ServerIp4))),
                    new Field(FieldKind.Proto, 6, 6), new Field(FieldKind.Port, 0, 65535), new Field(FieldKind.Port, 80, 80)], expires: expires),
            ], []);
            var start = DateTimeOffset.UtcNow;
            writer.Ask<NftWriterEvents.Applied>(new NftWriterCommands.Program(At(start + TimeSpan.FromSeconds(4)), 1), TimeSpan.FromSeconds(10)).Wait();
            Thread.Sleep(TimeSpan.FromSeconds(1));
            writer.Ask<NftWriterEvents.Applied>(new NftWriterCommands.Program(At(start + TimeSpan.FromSeconds(30)), 2), TimeSpan.FromSeconds(10)).Wait();
            Thread.Sleep(TimeSpan.FromSeconds(4));
            Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(lab.ClientNs, KernelLab.ServerIp4, 80)); // past the first expiry
        }
        finally { system.Terminate().Wait(); }
    }
}
