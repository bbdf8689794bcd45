using System.Collections.Immutable;
using System.Net;
using System.Net.NetworkInformation;
using System.Text;
using WhaleWall.Firewall.Binding;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using WhaleWall.TestSupport;
using Xunit;

namespace WhaleWall.KernelTests;

/// <summary>
/// The bridge table of docs/binding.md against real packets: a <see cref="BridgeLab"/> (a host
/// namespace with bridges, "container" namespaces on veth ports, an "internet" namespace routed
/// through the host). Each test shows the hole without the table first, so none can pass
/// vacuously, then the same packets with it.
/// </summary>
public sealed class BridgeBindingTests
{
    private const string Table = "wwbind";
    /// <summary>Generous for what must pass (a pass returns at once; the machine may be busy).</summary>
    private static readonly TimeSpan Allowed = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Delivered = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan NotDelivered = TimeSpan.FromMilliseconds(800);
    /// <summary>A blocked probe times out, or, when the container's own ARP/ND was what the
    /// table dropped, fails at once with "no route to host": both are "not connected" (every
    /// server probed here listens, so nothing answers with a reset).</summary>
    private static readonly TimeSpan Denied = TimeSpan.FromSeconds(1);

    // ------------------------------------------------------------------ helpers

    private static PortBinding Binding(LabContainer c) =>
        PortBinding.Of(c.PortIndex, RawFrames.Mac(c.Mac), IPAddress.Parse(c.Ip4), IPAddress.Parse(c.Ip6));

    private static KnownPort Known(LabContainer c) => new(c.PortIndex, RawFrames.Mac(c.Mac), IPAddress.Parse(c.Ip4), IPAddress.Parse(c.Ip6));

    private static void Install(BridgeLab lab, IEnumerable<PortBinding> bindings, IEnumerable<KnownPort>? known = null,
        IEnumerable<GuardedSubnet>? guards = null)
    {
        var raw = lab.Nft.Run(BridgeLayout.RawSetDeclarations(Table));
        Assert.True(raw.Ok, raw.Error);
        var elements = bindings.SelectMany(BridgeLayout.Elements)
            .Concat((known ?? []).SelectMany(BridgeLayout.Elements))
            .Concat((guards ?? []).Select(BridgeLayout.Element));
        var full = lab.Nft.Run(BridgeLayout.FullTable(Table, elements));
        Assert.True(full.Ok, full.Error);
    }

    private static void Change(BridgeLab lab, IEnumerable<BridgeElement> deletes, IEnumerable<BridgeElement> adds)
    {
        var r = lab.Nft.Run(BridgeLayout.Changes(Table, deletes, adds));
        Assert.True(r.Ok, r.Error);
    }

    /// <summary>After a change that lets a container talk: it connects within a few seconds.
    /// Its earlier, dropped attempts may have left a FAILED neighbour entry that answers
    /// "no route to host" until the kernel probes again: a real container retries, so does this.</summary>
    private static void EventuallyConnects(string ns, string ip, int port, string? sourceIp = null)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20); // a loaded 2-core CI machine: 8 s was seen to fall short
        ProbeOutcome outcome;
        while ((outcome = Probe.Tcp(ns, ip, port, Allowed, sourceIp: sourceIp)) != ProbeOutcome.Connected && DateTime.UtcNow < deadline)
            Thread.Sleep(500);
        Assert.Equal(ProbeOutcome.Connected, outcome);
    }

    private static byte[] Marker(string what) => Encoding.ASCII.GetBytes($"ww-marker-{what}-{Guid.NewGuid():N}");

    /// <summary>Sends one spoofed UDP frame from <paramref name="from"/> to <paramref name="to"/>'s
    /// address and MAC, returns whether it arrived on <paramref name="to"/>'s interface.</summary>
    private static bool UdpArrives(LabContainer from, LabContainer to, string srcMac, string srcIp, bool v6 = false)
    {
        var marker = Marker("udp");
        using var capture = new RawFrames.Capture(to.NsPath, "eth0");
        var frame = v6
            ? RawFrames.Udp6(RawFrames.Mac(to.Mac), RawFrames.Mac(srcMac), IPAddress.Parse(srcIp), IPAddress.Parse(to.Ip6), 9999, marker)
            : RawFrames.Udp4(RawFrames.Mac(to.Mac), RawFrames.Mac(srcMac), IPAddress.Parse(srcIp), IPAddress.Parse(to.Ip4), 9999, marker);
        RawFrames.Send(from.NsPath, "eth0", frame);
        return capture.Saw(marker, v6 || srcIp == (v6 ? from.Ip6 : from.Ip4) ? Delivered : NotDelivered);
    }

    // ------------------------------------------------------------------ the table itself

    [Fact]
    public void Table_loads_twice_lists_its_rules_and_leaves_other_tables_alone()
    {
        using var lab = new BridgeLab(withInternet: false);
        var a = lab.AddContainer(2);
        // somebody else's tables in the same namespace, bridge family included
        Assert.True(lab.Nft.Run("add table bridge theirs\nadd chain bridge theirs c { type filter hook prerouting priority 0; }\nadd rule bridge theirs c ip saddr 198.18.99.99 drop\nadd table inet theirs4").Ok);
        var before = lab.Nft.Run("list table bridge theirs").Output;

        Install(lab, [Binding(a)], guards: [new GuardedSubnet(IPNetwork.Parse(BridgeLab.Subnet0v4))]);
        Install(lab, [Binding(a)], guards: [new GuardedSubnet(IPNetwork.Parse(BridgeLab.Subnet0v4))]); // start-up again: same table

        var listed = lab.Nft.Run($"list table bridge {Table}");
        Assert.True(listed.Ok, listed.Error);
        Assert.Equal(BridgeLayout.Rules(Table).Count(), Rules(lab).Count());
        Assert.Equal(before, lab.Nft.Run("list table bridge theirs").Output);
        Assert.True(lab.Nft.Run("list table inet theirs4").Ok);

        Assert.True(lab.Nft.Run(BridgeLayout.DeleteTable(Table)).Ok);
        Assert.Equal(before, lab.Nft.Run("list table bridge theirs").Output);

        IEnumerable<string> Rules(BridgeLab l) =>
            RawNft.Objects(l.Nft.Run(RawNft.Batch(new System.Text.Json.Nodes.JsonObject
            {
                ["list"] = new System.Text.Json.Nodes.JsonObject { ["table"] = new System.Text.Json.Nodes.JsonObject { ["family"] = "bridge", ["name"] = Table } },
            })).Output).Where(o => o.ContainsKey("rule")).Select(o => o.ToJsonString());
    }

    // ------------------------------------------------------------------ a managed port

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Frames_from_a_managed_port_pass_only_with_its_own_mac_and_address(bool v6)
    {
        using var lab = new BridgeLab(withInternet: false);
        var a = lab.AddContainer(2);
        var b = lab.AddContainer(3);
        var neighbour = lab.AddContainer(4);
        string Ip(LabContainer c) => v6 ? c.Ip6 : c.Ip4;
        var free = v6 ? "2001:db8:30::77" : "198.18.30.77";

        // without the table every spoof arrives: the test can see a hole
        Assert.True(UdpArrives(a, neighbour, a.Mac, Ip(b), v6));
        Assert.True(UdpArrives(a, neighbour, b.Mac, Ip(a), v6));

        Install(lab, [Binding(a), Binding(b)]);

        Assert.True(UdpArrives(a, neighbour, a.Mac, Ip(a), v6));                    // its own: passes
        Assert.False(UdpArrives(a, neighbour, a.Mac, Ip(b), v6));                   // another managed address
        Assert.False(UdpArrives(a, neighbour, a.Mac, free, v6));                    // a free address of the subnet
        Assert.False(UdpArrives(a, neighbour, b.Mac, Ip(a), v6));                   // another managed MAC
        Assert.False(UdpArrives(a, neighbour, "02:42:c6:12:1e:99", Ip(a), v6));     // any other MAC
        if (v6) Assert.False(UdpArrives(a, neighbour, a.Mac, b.LinkLocal, v6));    // another managed link-local
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_managed_address_or_mac_from_any_other_port_is_dropped(bool v6)
    {
        using var lab = new BridgeLab(withInternet: false);
        var a = lab.AddContainer(2);
        var other = lab.AddContainer(3);   // not managed
        var neighbour = lab.AddContainer(4);
        string Ip(LabContainer c) => v6 ? c.Ip6 : c.Ip4;

        Assert.True(UdpArrives(other, neighbour, other.Mac, Ip(a), v6));

        Install(lab, [Binding(a)]);

        Assert.True(UdpArrives(other, neighbour, other.Mac, Ip(other), v6));        // unmanaged, its own: untouched
        Assert.False(UdpArrives(other, neighbour, other.Mac, Ip(a), v6));           // a's address
        Assert.False(UdpArrives(other, neighbour, a.Mac, Ip(other), v6));           // a's MAC
        if (v6) Assert.False(UdpArrives(other, neighbour, other.Mac, a.LinkLocal, v6)); // a's link-local
    }

    // ------------------------------------------------------------------ ARP and neighbour discovery

    /// <summary>The MAC <paramref name="ns"/>'s neighbour cache holds for <paramref name="ip"/> ("" if none).</summary>
    private static string CachedMac(BridgeLab lab, LabContainer ns, string ip)
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(lab.Ip(ns.Name, "-j", "neigh", "show", ip, "dev", "eth0"))!.AsArray();
        return json.Count == 0 ? "" : (string?)json[0]!["lladdr"] ?? "";
    }

    /// <summary>Makes <paramref name="ns"/> resolve <paramref name="ip"/> (a datagram to it), then
    /// waits out ARP's lock time so that a later reply could override the entry.</summary>
    private static void Resolve(BridgeLab lab, LabContainer ns, string ip, string expectedMac)
    {
        Probe.UdpEcho(ns.NsPath, ip, 9, TimeSpan.FromMilliseconds(300));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(3);
        while (CachedMac(lab, ns, ip) != expectedMac)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{ns.Name} did not resolve {ip}");
            Thread.Sleep(20);
        }
        Thread.Sleep(1100);
    }

    [Fact]
    public void Arp_replies_with_a_foreign_sender_change_no_neighbours_cache()
    {
        using var lab = new BridgeLab(withInternet: false);
        var a = lab.AddContainer(2);
        var b = lab.AddContainer(3);
        var other = lab.AddContainer(5); // not managed
        var neighbour = lab.AddContainer(4);
        void Claim(LabContainer from, LabContainer victim) => RawFrames.Send(from.NsPath, "eth0",
            RawFrames.ArpReply(RawFrames.Mac(from.Mac), RawFrames.Mac(from.Mac), IPAddress.Parse(victim.Ip4),
                RawFrames.Mac(neighbour.Mac), IPAddress.Parse(neighbour.Ip4), RawFrames.Mac(neighbour.Mac)));

        // without the table: a poisons the neighbour's entry for b
        Resolve(lab, neighbour, b.Ip4, b.Mac);
        Claim(a, b);
        Thread.Sleep(300);
        Assert.Equal(a.Mac, CachedMac(lab, neighbour, b.Ip4));

        lab.Ip(neighbour.Name, "neigh", "flush", "dev", "eth0");
        Install(lab, [Binding(a), Binding(b)]);
        Resolve(lab, neighbour, b.Ip4, b.Mac);  // b's own ARP replies pass
        Claim(a, b);                            // a managed port claiming another address
        Claim(other, b);                        // any other port claiming a managed address
        Thread.Sleep(500);
        Assert.Equal(b.Mac, CachedMac(lab, neighbour, b.Ip4));
    }

    [Fact]
    public void Neighbour_advertisements_for_foreign_targets_change_no_neighbours_cache()
    {
        using var lab = new BridgeLab(withInternet: false);
        var a = lab.AddContainer(2);
        var b = lab.AddContainer(3);
        var other = lab.AddContainer(5); // not managed
        var neighbour = lab.AddContainer(4);
        byte[] Advertise(LabContainer from, string target) => RawFrames.NeighbourAdvertisement(
            RawFrames.Mac(from.Mac), IPAddress.Parse(from.LinkLocal), IPAddress.Parse(target), RawFrames.Mac(from.Mac));

        Resolve(lab, neighbour, b.Ip6, b.Mac);
        RawFrames.Send(a.NsPath, "eth0", Advertise(a, b.Ip6));
        Thread.Sleep(300);
        Assert.Equal(a.Mac, CachedMac(lab, neighbour, b.Ip6)); // the hole, without the table

        lab.Ip(neighbour.Name, "neigh", "flush", "dev", "eth0");
        Install(lab, [Binding(a), Binding(b)]);
        Resolve(lab, neighbour, b.Ip6, b.Mac); // neighbour discovery itself still works
        RawFrames.Send(a.NsPath, "eth0", Advertise(a, b.Ip6));
        RawFrames.Send(other.NsPath, "eth0", Advertise(other, b.Ip6));
        Thread.Sleep(500);
        Assert.Equal(b.Mac, CachedMac(lab, neighbour, b.Ip6));

        // an advertisement for its own address goes through
        using var capture = new RawFrames.Capture(neighbour.NsPath, "eth0");
        var own = Advertise(a, a.Ip6);
        RawFrames.Send(a.NsPath, "eth0", own);
        Assert.True(capture.Saw(own[54..], Delivered));
    }

    private static string Routes6(BridgeLab lab, LabContainer c) =>
        lab.Ip(c.Name, "-6", "route", "show") + lab.Ip(c.Name, "-6", "addr", "show", "dev", "eth0");

    private static bool RaTookEffect(BridgeLab lab, LabContainer c, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (DateTime.UtcNow < deadline)
        {
            var state = Routes6(lab, c);
            if (state.Contains("proto ra") || state.Contains("2001:db8:30:99:")) return true;
            Thread.Sleep(50);
        }
        return false;
    }

    [Fact]
    public void Router_advertisements_from_a_port_change_nothing_for_neighbours()
    {
        using var lab = new BridgeLab(withInternet: false);
        var a = lab.AddContainer(2);
        var other = lab.AddContainer(5);     // not managed
        var first = lab.AddContainer(3);     // sees the hole
        var second = lab.AddContainer(4);    // must see nothing once the table is in
        void AcceptRa(LabContainer c)
        {
            lab.Sysctl(c.Name, "net.ipv6.conf.eth0.accept_ra=1");
            lab.Sysctl(c.Name, "net.ipv6.conf.eth0.autoconf=1");
        }
        byte[] Ra(LabContainer from) => RawFrames.RouterAdvertisement(RawFrames.Mac(from.Mac), IPAddress.Parse(from.LinkLocal),
            IPAddress.Parse("2001:db8:30:99::"), 64);

        AcceptRa(first);
        RawFrames.Send(a.NsPath, "eth0", Ra(a));
        Assert.True(RaTookEffect(lab, first, TimeSpan.FromSeconds(3)), "without the table a neighbour follows the advertisement");

        Install(lab, [Binding(a), Binding(second)]);
        AcceptRa(second);
        var before = Routes6(lab, second);
        RawFrames.Send(a.NsPath, "eth0", Ra(a));          // from a managed port
        RawFrames.Send(other.NsPath, "eth0", Ra(other));  // to a managed port, from anyone
        Assert.False(RaTookEffect(lab, second, TimeSpan.FromSeconds(1.5)));
        Assert.Equal(before, Routes6(lab, second));
    }

    // ------------------------------------------------------------------ link-local

    [Fact]
    public void A_managed_container_reaches_no_link_local_address_and_none_reaches_it()
    {
        using var lab = new BridgeLab(withInternet: false);
        var a = lab.AddContainer(2);
        var neighbour = lab.AddContainer(3);
        using var atNeighbour = TcpServer.Start(neighbour.NsPath, "::", 8080);
        using var atHost = TcpServer.Start(lab.HostNs, "::", 8080);
        using var atA = TcpServer.Start(a.NsPath, "::", 8080);
        var hostLinkLocal = lab.BridgeLinkLocal(BridgeLab.Bridge0);
        var toNeighbour = $"{neighbour.LinkLocal}%{a.EthIndex}";
        var toHost = $"{hostLinkLocal}%{a.EthIndex}";
        var toA = $"{a.LinkLocal}%{neighbour.EthIndex}";

        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(a.NsPath, toNeighbour, 8080, Allowed));
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(a.NsPath, toHost, 8080, Allowed));
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(neighbour.NsPath, toA, 8080, Allowed));

        Install(lab, [Binding(a)]);

        Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(a.NsPath, toNeighbour, 8080, Denied));
        Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(a.NsPath, toHost, 8080, Denied));
        Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(neighbour.NsPath, toA, 8080, Denied));
        // neighbour discovery still works: its global IPv6 address reaches and is reached (no inet table here)
        lab.Ip(a.Name, "neigh", "flush", "dev", "eth0");
        lab.Ip(neighbour.Name, "neigh", "flush", "dev", "eth0");
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(a.NsPath, neighbour.Ip6, 8080, Allowed));
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(neighbour.NsPath, a.Ip6, 8080, Allowed));
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(a.NsPath, BridgeLab.Gateway0v6, 8080, Allowed));
    }

    // ------------------------------------------------------------------ with WhaleWall's inet table

    /// <summary>WhaleWall's real inet table (compiled from labels) in the host namespace, holding
    /// <paramref name="c"/>'s policy: it may reach the internet server on tcp/80 only.</summary>
    private static void InstallPolicy(BridgeLab lab, LabContainer c)
    {
        var labels = new Dictionary<string, string>
        {
            [LabelKeys.Enabled] = "true",
            [LabelKeys.Rules] = $"output:\n  - ips: [{BridgeLab.InternetIp4}, {BridgeLab.InternetIp6}]\n    proto: tcp\n    dst_ports: [80]\n",
        }.ToImmutableDictionary();
        var facts = new ContainerFacts(c.Name, c.Name, true, labels,
            [new NetworkAttachment("br0", "br0", IPAddress.Parse(c.Ip4), IPAddress.Parse(c.Ip6), 24, 64, MacAddress: c.Mac)], []);
        var compiled = Compiler.Compile(facts, LabelParser.Decide(labels), []);
        Assert.Null(compiled.Error);
        var r = lab.Nft.Run(NftJson.FullTable(Table, compiled.Fragment.Elements));
        Assert.True(r.Ok, r.Error);
    }

    [Theory]
    [InlineData("198.18.30.50", "/24", BridgeLab.InternetIp4)]
    [InlineData("2001:db8:30::50", "/64", BridgeLab.InternetIp6)]
    public void A_container_that_adds_an_address_reaches_nothing_through_it_and_its_policy_still_holds(string added, string prefix, string server)
    {
        using var lab = new BridgeLab();
        var a = lab.AddContainer(2);
        var neighbour = lab.AddContainer(3);
        var v6 = added.Contains(':');
        var own = v6 ? a.Ip6 : a.Ip4;
        using var http = TcpServer.Start(lab.InternetNs, server, 80);
        using var other = TcpServer.Start(lab.InternetNs, server, 81);
        using var atNeighbour = TcpServer.Start(neighbour.NsPath, "::", 8080);
        var toNeighbour = v6 ? neighbour.Ip6 : neighbour.Ip4;

        InstallPolicy(lab, a);
        // the container (NET_ADMIN) takes another address of its subnet
        lab.Ip(a.Name, v6 ? "-6" : "-4", "addr", "add", added + prefix, "dev", "eth0", "nodad");

        // the hole, with the inet table alone: the added address is "unmanaged" and reaches anything
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(a.NsPath, server, 81, Allowed, sourceIp: added));
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(a.NsPath, toNeighbour, 8080, Allowed, sourceIp: added));
        Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(a.NsPath, server, 81, Denied, sourceIp: own));

        Install(lab, [Binding(a)]);

        Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(a.NsPath, server, 81, Denied, sourceIp: added));
        Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(a.NsPath, server, 80, Denied, sourceIp: added));
        Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(a.NsPath, toNeighbour, 8080, Denied, sourceIp: added));
        // its own address: its policy, unchanged
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(a.NsPath, server, 80, Allowed, sourceIp: own));
        Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(a.NsPath, server, 81, Denied, sourceIp: own));
        Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(a.NsPath, toNeighbour, 8080, Denied, sourceIp: own));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void The_bridge_table_drops_a_spoofed_frame_before_br_netfilter_hands_it_to_the_inet_hooks(int callIptables)
    {
        using var lab = new BridgeLab(withInternet: false);
        var a = lab.AddContainer(2);
        var b = lab.AddContainer(3);
        var neighbour = lab.AddContainer(4);
        lab.Sysctl(lab.HostName, $"net.bridge.bridge-nf-call-iptables={callIptables}");
        // an inet forward chain that counts what it sees from b's address
        Assert.True(lab.Nft.Run($"add table inet seen\nadd chain inet seen counted {{ type filter hook forward priority -500; }}\nadd rule inet seen counted ip saddr {b.Ip4} counter").Ok);
        long Seen() => long.Parse(System.Text.RegularExpressions.Regex.Match(lab.Nft.Run("list chain inet seen counted").Output, @"""packets"":\s*(\d+)").Groups[1].Value);

        Assert.True(UdpArrives(a, neighbour, a.Mac, b.Ip4));
        Assert.Equal(callIptables == 1 ? 1 : 0, Seen()); // bridged IPv4 reaches the inet hooks only through br_netfilter

        Install(lab, [Binding(a), Binding(b)]);
        Assert.False(UdpArrives(a, neighbour, a.Mac, b.Ip4));
        Assert.Equal(callIptables == 1 ? 1 : 0, Seen()); // dropped in bridge prerouting: the inet hooks never saw it
    }

    // ------------------------------------------------------------------ unknown addresses wait

    [Fact]
    public void Unknown_addresses_wait_on_a_network_with_a_managed_container_and_nowhere_else()
    {
        using var lab = new BridgeLab();
        var managed = lab.AddContainer(2);
        var known = lab.AddContainer(3);
        var fresh = lab.AddContainer(4);                     // started, not yet classified
        var elsewhere = lab.AddContainer(5, BridgeLab.Bridge1); // a network without managed containers
        using var http = TcpServer.Start(lab.InternetNs, "::", 80);
        var internet4 = BridgeLab.InternetIp4;
        var internet6 = BridgeLab.InternetIp6;

        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(fresh.NsPath, internet4, 80, Allowed));

        Install(lab, [Binding(managed)], [Known(known)],
            [new GuardedSubnet(IPNetwork.Parse(BridgeLab.Subnet0v4)), new GuardedSubnet(IPNetwork.Parse(BridgeLab.Subnet0v6))]);

        Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(fresh.NsPath, internet4, 80, Denied));
        Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(fresh.NsPath, internet6, 80, Denied));
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(known.NsPath, internet4, 80, Allowed));
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(known.NsPath, internet6, 80, Allowed));
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(elsewhere.NsPath, internet4, 80, Allowed));
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(elsewhere.NsPath, internet6, 80, Allowed));
        // a known container's address is classified on its own port only
        lab.Ip(fresh.Name, "addr", "add", "198.18.30.3/32", "dev", "eth0");
        Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(fresh.NsPath, internet4, 80, Denied, sourceIp: "198.18.30.3"));

        // classified (knowingly unmanaged): it goes
        Change(lab, [], BridgeLayout.Elements(Known(fresh)));
        EventuallyConnects(fresh.NsPath, internet4, 80, sourceIp: fresh.Ip4);
        // Its dropped IPv6 attempts left the gateway's neighbour entry FAILED. In about 1 of 5 runs
        // on a loaded machine that entry did not recover within 20 s, and the host never saw a
        // neighbour solicitation from this namespace meanwhile (captured: no entry for it on the
        // host, the gateway FAILED here). The bridge rules are what this test is about, so it starts
        // from an empty cache. A lab of a bridge-family drop alone always recovered within 0.5 s,
        // so what else this lab adds is open (issue 14's closing note).
        lab.Ip(fresh.Name, "-6", "neigh", "flush", "dev", "eth0");
        EventuallyConnects(fresh.NsPath, internet6, 80);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void While_the_daemon_is_away_unknown_addresses_wait_in_strict_mode_and_pass_once_a_lenient_lease_lapses(bool strict)
    {
        using var lab = new BridgeLab();
        var managed = lab.AddContainer(2);
        var fresh = lab.AddContainer(4);
        using var http = TcpServer.Start(lab.InternetNs, BridgeLab.InternetIp4, 80);
        var lease = strict ? (TimeSpan?)null : TimeSpan.FromSeconds(2);
        var guard = new GuardedSubnet(IPNetwork.Parse(BridgeLab.Subnet0v4), lease);
        Install(lab, [Binding(managed)], guards: [guard]);
        Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(fresh.NsPath, BridgeLab.InternetIp4, 80, Denied));

        // a running daemon renews the lease (delete + add in one transaction restarts the timeout)
        for (var i = 0; i < 3; i++)
        {
            Thread.Sleep(800);
            Change(lab, [BridgeLayout.Element(guard)], [BridgeLayout.Element(guard)]);
        }
        Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(fresh.NsPath, BridgeLab.InternetIp4, 80, Denied));

        // the daemon stops renewing
        Thread.Sleep(2500);
        if (strict) Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(fresh.NsPath, BridgeLab.InternetIp4, 80, Denied));
        else EventuallyConnects(fresh.NsPath, BridgeLab.InternetIp4, 80);
        // the managed container stays bound either way: its address from the fresh port is still refused
        lab.Ip(fresh.Name, "addr", "add", managed.Ip4 + "/32", "dev", "eth0");
        Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(fresh.NsPath, BridgeLab.InternetIp4, 80, Denied, sourceIp: managed.Ip4));
    }

    // ------------------------------------------------------------------ a reused address

    [Fact]
    public void A_new_container_on_a_removed_containers_address_is_dropped_until_its_own_binding_replaces_the_old()
    {
        using var lab = new BridgeLab();
        var old = lab.AddContainer(2);
        using var http = TcpServer.Start(lab.InternetNs, BridgeLab.InternetIp4, 80);
        var oldBinding = Binding(old);
        Install(lab, [oldBinding]);
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(old.NsPath, BridgeLab.InternetIp4, 80, Allowed));

        // the daemon is away: the container goes, another comes on the same address (and, as
        // with Docker's address-derived MACs, the same MAC); the table still holds the old binding
        lab.RemoveContainer(old);
        var reused = lab.AddContainer(2);
        Assert.Equal(old.Ip4, reused.Ip4);
        Assert.Equal(old.Mac, reused.Mac);
        Assert.NotEqual(old.PortIndex, reused.PortIndex);
        Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(reused.NsPath, BridgeLab.InternetIp4, 80, Denied));

        // reconciled: the old binding goes, the new one comes, in one transaction
        Change(lab, BridgeLayout.Elements(oldBinding), BridgeLayout.Elements(Binding(reused)));
        EventuallyConnects(reused.NsPath, BridgeLab.InternetIp4, 80);
    }

    // ------------------------------------------------------------------ the start race

    [Fact]
    public void Until_its_port_is_known_a_managed_container_sends_nothing_then_its_policy_applies()
    {
        using var lab = new BridgeLab();
        var a = lab.AddContainer(2);
        var neighbour = lab.AddContainer(3);
        using var http = TcpServer.Start(lab.InternetNs, BridgeLab.InternetIp4, 80);
        Assert.Equal(ProbeOutcome.Connected, Probe.Tcp(a.NsPath, BridgeLab.InternetIp4, 80, Allowed));

        // `network connect`: Docker has told the address and MAC, the port is not ready yet
        var unbound = Binding(a) with { Port = null };
        Install(lab, [unbound]);
        Assert.NotEqual(ProbeOutcome.Connected, Probe.Tcp(a.NsPath, BridgeLab.InternetIp4, 80, Denied));
        Assert.False(UdpArrives(a, neighbour, a.Mac, a.Ip4, v6: false));
        Assert.False(UdpArrives(a, neighbour, a.Mac, a.Ip6, v6: true));

        // the port is found: the same binding, now on it
        Change(lab, [], BridgeLayout.Elements(unbound.On(a.PortIndex)));
        EventuallyConnects(a.NsPath, BridgeLab.InternetIp4, 80);
        Assert.True(UdpArrives(a, neighbour, a.Mac, a.Ip4, v6: false));
    }

    [Fact]
    public void Vlan_tagged_frames_carry_no_managed_address_past_the_table()
    {
        using var lab = new BridgeLab(withInternet: false);
        var b = lab.AddContainer(3);
        var other = lab.AddContainer(5); // not managed
        var neighbour = lab.AddContainer(4);
        byte[] ArpClaim(LabContainer from, LabContainer victim) => RawFrames.Tagged(RawFrames.ArpReply(RawFrames.Mac(from.Mac),
            RawFrames.Mac(from.Mac), IPAddress.Parse(victim.Ip4), RawFrames.Mac(neighbour.Mac), IPAddress.Parse(neighbour.Ip4), RawFrames.Mac(neighbour.Mac)));
        byte[] NaClaim(LabContainer from, LabContainer victim) => RawFrames.Tagged(RawFrames.NeighbourAdvertisement(
            RawFrames.Mac(from.Mac), IPAddress.Parse(from.LinkLocal), IPAddress.Parse(victim.Ip6), RawFrames.Mac(from.Mac)));

        // the receiver takes a VLAN 0 frame as untagged: without the table, both poison it
        Resolve(lab, neighbour, b.Ip4, b.Mac);
        Resolve(lab, neighbour, b.Ip6, b.Mac);
        RawFrames.Send(other.NsPath, "eth0", ArpClaim(other, b), NaClaim(other, b));
        Thread.Sleep(300);
        Assert.Equal(other.Mac, CachedMac(lab, neighbour, b.Ip4));
        Assert.Equal(other.Mac, CachedMac(lab, neighbour, b.Ip6));

        lab.Ip(neighbour.Name, "neigh", "flush", "dev", "eth0");
        Install(lab, [Binding(b)]);
        Resolve(lab, neighbour, b.Ip4, b.Mac);
        Resolve(lab, neighbour, b.Ip6, b.Mac);
        RawFrames.Send(other.NsPath, "eth0", ArpClaim(other, b), NaClaim(other, b));
        Thread.Sleep(500);
        Assert.Equal(b.Mac, CachedMac(lab, neighbour, b.Ip4));
        Assert.Equal(b.Mac, CachedMac(lab, neighbour, b.Ip6));
        // and a managed port sends nothing tagged, not even with its own address
        using var capture = new RawFrames.Capture(neighbour.NsPath, "eth0");
        var marker = Marker("tagged");
        RawFrames.Send(b.NsPath, "eth0", RawFrames.Tagged(RawFrames.Udp4(RawFrames.Mac(neighbour.Mac), RawFrames.Mac(b.Mac),
            IPAddress.Parse(b.Ip4), IPAddress.Parse(neighbour.Ip4), 9999, marker)));
        Assert.False(capture.Saw(marker, NotDelivered));
    }

    [Fact]
    public void One_transaction_carries_a_containers_inet_and_bridge_elements_and_fails_whole()
    {
        using var lab = new BridgeLab(withInternet: false);
        var a = lab.AddContainer(2);
        Assert.True(lab.Nft.Run(BridgeLayout.RawSetDeclarations(Table)).Ok);
        Assert.True(lab.Nft.Run(BridgeLayout.FullTable(Table, [])).Ok);
        Assert.True(lab.Nft.Run(NftJson.FullTable(Table, [])).Ok);
        var bridge = BridgeLayout.ChangeCommands(Table, [], BridgeLayout.Elements(Binding(a)));
        var managed = new Element(NftSets.Managed(IpFamily.V4), [Field.Address(AddressRange.Single(IPAddress.Parse(a.Ip4)))]);
        string Batch(params System.Text.Json.Nodes.JsonNode[] extra)
        {
            var inet = System.Text.Json.Nodes.JsonNode.Parse(NftJson.Changes(Table, [], [managed]))!["nftables"]!.AsArray();
            var all = new System.Text.Json.Nodes.JsonArray();
            foreach (var c in inet.Concat(bridge).Concat(extra)) all.Add(c!.DeepClone());
            return new System.Text.Json.Nodes.JsonObject { ["nftables"] = all }.ToJsonString();
        }

        // a batch that fails at its last command changes neither table
        var failing = Batch(new System.Text.Json.Nodes.JsonObject
        {
            ["add"] = new System.Text.Json.Nodes.JsonObject
            {
                ["element"] = new System.Text.Json.Nodes.JsonObject
                {
                    ["family"] = "bridge", ["table"] = Table, ["name"] = "nosuchset", ["elem"] = new System.Text.Json.Nodes.JsonArray(1),
                },
            },
        });
        Assert.False(lab.Nft.Run(failing).Ok);
        Assert.DoesNotContain(a.Ip4, lab.Nft.Run($"list set bridge {Table} owned4").Output);
        Assert.DoesNotContain(a.Ip4, lab.Nft.Run($"list set inet {Table} managed4").Output);

        Assert.True(lab.Nft.Run(Batch()).Ok);
        Assert.Contains(a.Ip4, lab.Nft.Run($"list set bridge {Table} owned4").Output);
        Assert.Contains(a.Ip4, lab.Nft.Run($"list set inet {Table} managed4").Output);
    }
}
