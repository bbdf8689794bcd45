using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Flows;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Policy;
using Xunit;

namespace WhaleWall.Tests.Flows;

/// <summary>Flow learning's pure parts: attributing a conntrack flow, aggregating it within
/// bounds, and the rules suggested from it.</summary>
public sealed class FlowLearningTests
{
    private sealed class Directory(params ContainerFacts[] containers) : IFlowDirectory
    {
        public HashSet<string> Learning { get; } = [.. containers.Select(c => c.Id)];
        public Dictionary<IPAddress, string> Names { get; } = new();
        public ContainerFacts? ContainerAt(IPAddress address) => containers.FirstOrDefault(c => c.Addresses.Contains(address));
        public bool Learns(string containerId) => Learning.Contains(containerId);
        public string? NameOf(string containerId, IPAddress address) => Names.GetValueOrDefault(address);
    }

    private static NewFlow Flow(string from, string to, ushort port, byte proto = ConntrackFlow.Tcp, string? dnatTo = null, ushort? dnatPort = null, uint mark = 0) =>
        new(new ConntrackFlow(proto,
            new FlowTuple(IPAddress.Parse(from), IPAddress.Parse(to), 40000, port),
            new FlowTuple(IPAddress.Parse(dnatTo ?? to), IPAddress.Parse(from), dnatPort ?? port, 40000)), mark);

    private static readonly ContainerFacts Web = Facts.Container("web", "198.18.128.2", labels: new Dictionary<string, string>
        { [ContainerFacts.ComposeProjectLabel] = "shop", [ContainerFacts.ComposeServiceLabel] = "web" }) with { Name = "shop-web-1" };
    private static readonly ContainerFacts Db = Facts.Container("db", "198.18.128.3", labels: new Dictionary<string, string>
        { [ContainerFacts.ComposeProjectLabel] = "shop", [ContainerFacts.ComposeServiceLabel] = "db" }) with { Name = "shop-db-1" };
    private static readonly ContainerFacts Other = Facts.Container("other", "198.18.128.4");

    [Fact]
    public void A_flow_is_attributed_to_the_peer_service_the_name_or_the_address_as_the_filter_saw_it()
    {
        var dir = new Directory(Web, Db, Other);
        dir.Names[IPAddress.Parse("198.19.0.10")] = "api.example.test";
        ObservedFlow At(NewFlow f) => FlowAttribution.Egress(f, dir, 1000, 15353)!;

        Assert.Equal(new FlowKey(DestinationKind.Container, "db", L4Proto.Tcp, 5432), At(Flow("198.18.128.2", "198.18.128.3", 5432)).Key);
        Assert.Equal(new FlowKey(DestinationKind.Container, "other", L4Proto.Tcp, 80), At(Flow("198.18.128.2", "198.18.128.4", 80)).Key);
        Assert.Equal(new FlowKey(DestinationKind.Host, "api.example.test", L4Proto.Tcp, 443), At(Flow("198.18.128.2", "198.19.0.10", 443)).Key);
        Assert.Equal(new FlowKey(DestinationKind.Address, "198.19.0.11", L4Proto.Udp, 53), At(Flow("198.18.128.2", "198.19.0.11", 53, ConntrackFlow.Udp)).Key);
        // a published port reached through the host's address: the rule must name what the filter saw (after DNAT)
        Assert.Equal(new FlowKey(DestinationKind.Container, "db", L4Proto.Tcp, 5432),
            At(Flow("198.18.128.2", "198.18.100.1", 15432, dnatTo: "198.18.128.3", dnatPort: 5432)).Key);
        // ICMP: the type
        Assert.Equal(new FlowKey(DestinationKind.Address, "198.19.0.11", L4Proto.Icmp, 8), At(Flow("198.18.128.2", "198.19.0.11", 8 << 8, ConntrackFlow.Icmp)).Key);
        var observed = At(Flow("198.18.128.2", "198.19.0.11", 80, mark: 0x40000000));
        Assert.Equal(("shop/web", "shop-web-1", true), (observed.Owner, observed.Container, observed.AuditDrop));
    }

    [Fact]
    public void Flows_of_containers_that_do_not_learn_and_queries_redirected_to_the_proxy_are_not_recorded()
    {
        var dir = new Directory(Web, Db);
        dir.Learning.Remove(Web.Id);
        Assert.Null(FlowAttribution.Egress(Flow("198.18.128.2", "198.19.0.11", 80), dir, 0, 15353));
        Assert.Null(FlowAttribution.Egress(Flow("198.19.0.11", "198.18.128.2", 80), dir, 0, 15353)); // nobody's egress
        dir.Learning.Add(Web.Id);
        Assert.Null(FlowAttribution.Egress(Flow("198.18.128.2", "198.19.0.53", 53, ConntrackFlow.Udp, dnatTo: "198.18.100.1", dnatPort: 15353), dir, 0, 15353));
        Assert.NotNull(FlowAttribution.Egress(Flow("198.18.128.2", "198.19.0.53", 53, ConntrackFlow.Udp), dir, 0, 15353));
    }

    [Fact]
    public void The_log_aggregates_per_owner_and_stays_bounded()
    {
        var limits = new FlowLimits(PerOwner: 3, Owners: 2, NamesPerOwner: 2);
        var log = FlowLog.Empty;
        ObservedFlow F(string owner, ushort port, long at, string container = "c1", bool drop = false) =>
            new(owner, null, null, container, new FlowKey(DestinationKind.Address, "198.19.0.10", L4Proto.Tcp, port), at, drop);
        (log, _, _) = log.Record(F("a", 80, 10), limits);
        (log, _, _) = log.Record(F("a", 80, 20, "c2", drop: true), limits);
        (log, _, _) = log.Record(F("a", 81, 30, "c3"), limits);
        (log, _, _) = log.Record(F("a", 82, 40), limits);
        (log, var outcome, var owner) = log.Record(F("a", 83, 50), limits);
        Assert.Equal(FlowLog.Outcome.Overflow, outcome);
        Assert.Equal((3, 1L), (owner.Flows.Count, owner.Overflow));
        Assert.Equal(new FlowStats(10, 20, 2, 1), owner.Flows[new FlowKey(DestinationKind.Address, "198.19.0.10", L4Proto.Tcp, 80)]);
        Assert.Equal(["c1", "c2"], owner.Containers); // names bounded too
        (log, _, _) = log.Record(F("b", 80, 60), limits);
        (log, _, _) = log.Record(F("c", 80, 70), limits); // a third owner: the one seen longest ago goes
        Assert.Equal(["b", "c"], log.Owners.Keys.Order());
    }

    [Fact]
    public void Ports_merge_into_ranges_only_where_contiguous() =>
        Assert.Equal(["22", "80-82", "443", "8080-8081"], Suggestion.Ranges([22, 80, 81, 82, 443, 8080, 8081]));

    private static FlowKey K(DestinationKind kind, string dest, ushort port, L4Proto proto = L4Proto.Tcp) => new(kind, dest, proto, port);

    [Fact]
    public void Suggested_rules_parse_and_allow_exactly_the_observed_flows()
    {
        FlowKey[] flows =
        [
            K(DestinationKind.Container, "db", 5432),
            K(DestinationKind.Host, "api.example.test", 443),
            K(DestinationKind.Host, "cdn.example.test", 443),
            K(DestinationKind.Address, "198.19.0.11", 80),
            K(DestinationKind.Address, "198.19.0.11", 81),
            K(DestinationKind.Address, "198.19.0.12", 80),
            K(DestinationKind.Address, "198.19.0.12", 81),
            K(DestinationKind.Address, "2001:db8:19::10", 53, L4Proto.Udp),
            K(DestinationKind.Address, "198.19.0.13", 8, L4Proto.Icmp),
        ];
        var rules = Suggestion.Rules(flows, wildcards: true);
        Assert.Equal("""
            output:
              - container: db
                proto: tcp
                dst_ports: [5432]
              - hosts: [api.example.test, cdn.example.test]
                proto: tcp
                dst_ports: [443]
              - ips: [198.19.0.13]
                proto: icmp
                icmp_types: [echo-request]
              - ips: [198.19.0.11, 198.19.0.12]
                proto: tcp
                dst_ports: [80-81]
              - ips: ["2001:db8:19::10"]
                proto: udp
                dst_ports: [53]

            """.Replace("\r", ""), rules);

        var parsed = LabelParser.ParseRules(rules, proxy: true);
        Assert.Empty(parsed.Errors);
        // compiled for a container with the peer present: exactly these elements, nothing wider
        var self = Facts.Container("web", "198.18.128.2", rules, ipv6: "2001:db8:128::2");
        var db = Facts.Container("db", "198.18.128.3");
        var elements = Compiler.Compile(self, LabelParser.Decide(self.Labels), [db]).Fragment.Elements
            .Where(e => e.Set is "out4" or "out6").Select(e => e.ToString()).ToList();
        Assert.Contains(elements, e => e.Contains("198.18.128.3") && e.Contains(". 5432"));
        Assert.DoesNotContain(elements, e => e.Contains("0.0.0.0") || e.Contains("::/0"));
    }

    [Fact]
    public void Three_sibling_names_become_a_one_label_wildcard_only_with_the_proxy_grammar()
    {
        FlowKey[] flows = [.. new[] { "a.svc.example.test", "b.svc.example.test", "c.svc.example.test", "api.example.test" }
            .Select(n => K(DestinationKind.Host, n, 443))];
        var with = Suggestion.Rules(flows, wildcards: true);
        Assert.Contains("hosts: [\"*.svc.example.test\", api.example.test]", with);
        Assert.Empty(LabelParser.ParseRules(with, proxy: true).Errors);
        var without = Suggestion.Rules(flows, wildcards: false);
        Assert.Contains("hosts: [a.svc.example.test, api.example.test, b.svc.example.test, c.svc.example.test]", without);
        Assert.Empty(LabelParser.ParseRules(without).Errors);
        // two siblings stay names
        Assert.DoesNotContain("*", Suggestion.Rules(flows.Take(2), wildcards: true));
    }

    [Fact]
    public void No_flow_suggests_no_rule() => Assert.Equal("output: []\n", Suggestion.Rules([], wildcards: true));
}

/// <summary>Per-rule counters from per-element ones (`suggest --unused`).</summary>
public sealed class RuleUsageTests
{
    [Fact]
    public void Listed_elements_are_read_into_intervals_and_counted_for_each_rule_they_overlap()
    {
        var listing = """
            {"nftables": [{"set": {"family": "inet", "name": "out4_2", "table": "whalewall", "type": ["ipv4_addr", "ipv4_addr", "inet_proto", "inet_service", "inet_service"], "flags": ["interval"],
              "elem": [{"elem": {"val": {"concat": ["198.18.128.2", "198.19.0.10", "tcp", {"range": [0, 65535]}, 80]}, "counter": {"packets": 3, "bytes": 180}}},
                       {"elem": {"val": {"concat": ["198.18.128.2", {"prefix": {"addr": "198.19.1.0", "len": 24}}, "udp", {"range": [0, 65535]}, {"range": [1000, 1002]}]}, "counter": {"packets": 0, "bytes": 0}}}]}}]}
            """;
        var kernel = WhaleWall.Firewall.Nft.NftElementFields.Read(listing);
        Assert.Equal(2, kernel.Count);
        Assert.Equal(6u, (uint)kernel[0].Fields[2].Lo);
        Assert.Equal((UInt128)0xC6130100, kernel[1].Fields[1].Lo); // 198.19.1.0/24
        Assert.Equal((UInt128)0xC61301FF, kernel[1].Fields[1].Hi);

        var self = Facts.Container("web", "198.18.128.2", """
            output:
              - ips: [198.19.0.10]
                proto: tcp
                dst_ports: [80]
              - ips: [198.19.1.5]
                proto: udp
                dst_ports: [1001]
              - ips: [198.19.0.10]
                proto: tcp
                dst_ports: [81]
                log_prefix: "x "
            """);
        var usage = WhaleWall.Firewall.Explain.RuleUsage.Of(WhaleWall.Firewall.Decide.DecisionContext.Default, self, [], kernel);
        Assert.Equal([(3UL, true), (0UL, true), (0UL, false)], usage.Select(u => (u.Packets, u.Counted)));
        Assert.Equal("output[1]", usage[1].Source!.Path);
    }

    [Fact]
    public void Rules_merged_into_one_kernel_element_are_not_counted_rather_than_guessed()
    {
        // .10:80 and .11:80 become one element 198.19.0.10-198.19.0.11 . 80: its hits cannot be told apart
        var self = Facts.Container("web", "198.18.128.2", """
            output:
              - ips: [198.19.0.10]
                proto: tcp
                dst_ports: [80]
              - ips: [198.19.0.11]
                proto: tcp
                dst_ports: [80]
            """);
        var listing = """
            {"nftables": [{"set": {"family": "inet", "name": "out4_2", "table": "whalewall", "type": ["ipv4_addr", "ipv4_addr", "inet_proto", "inet_service", "inet_service"], "flags": ["interval"],
              "elem": [{"elem": {"val": {"concat": ["198.18.128.2", {"range": ["198.19.0.10", "198.19.0.11"]}, "tcp", {"range": [0, 65535]}, 80]}, "counter": {"packets": 3, "bytes": 180}}}]}}]}
            """;
        var usage = WhaleWall.Firewall.Explain.RuleUsage.Of(WhaleWall.Firewall.Decide.DecisionContext.Default, self, [],
            WhaleWall.Firewall.Nft.NftElementFields.Read(listing));
        Assert.All(usage, u => Assert.False(u.Counted));
        Assert.Contains("output[1]", usage[0].Note);
        // no hit on the shared element: both unused, truly
        var idle = WhaleWall.Firewall.Explain.RuleUsage.Of(WhaleWall.Firewall.Decide.DecisionContext.Default, self, [],
            WhaleWall.Firewall.Nft.NftElementFields.Read(listing.Replace("\"packets\": 3", "\"packets\": 0")));
        Assert.All(idle, u => Assert.Equal((true, 0UL), (u.Counted, u.Packets)));
    }
}
