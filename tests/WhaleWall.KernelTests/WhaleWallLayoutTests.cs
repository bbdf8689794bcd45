using System.Collections.Immutable;
using System.Net;
using Akka.Actor;
using WhaleWall.Actors.Nft;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
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
}
