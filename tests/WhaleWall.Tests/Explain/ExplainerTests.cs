using System.Collections.Immutable;
using System.Diagnostics;
using System.Net;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Explain;
using WhaleWall.Firewall.Policy;
using Xunit;

namespace WhaleWall.Tests.Explain;

/// <summary>The evaluator against the real decision entry point and compiler, rule kind by rule kind.</summary>
public sealed class ExplainerTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    private static ContainerFacts C(string name, string ip, string? rules = null, bool enabled = true,
        Dictionary<string, string>? labels = null, IEnumerable<PublishedPort>? ports = null) =>
        Facts.Container(name, ip, rules, enabled, ports: ports, labels: labels) is var f
            ? f with { Networks = [f.Networks[0] with { IPv4Prefix = 24 }] }
            : f;

    private static Explanation Explain(ContainerFacts self, ExplainQuery query, DecisionContext? context = null,
        IEnumerable<ContainerFacts>? others = null, IEnumerable<DnsLookup>? lookups = null) =>
        Explainer.Explain(new ExplainInput(context ?? DecisionContext.Default, self, [.. others ?? []], Now, Lookups: [.. lookups ?? []]), query);

    private static ExplainQuery Out(string peer, ushort port, L4Proto proto = L4Proto.Tcp) => new(Direction.Egress, proto, peer, port);
    private static ExplainQuery In(string peer, ushort port, L4Proto proto = L4Proto.Tcp) => new(Direction.Ingress, proto, peer, port);

    private const string Https = """
        output:
          - ips: [198.19.0.10]
            proto: tcp
            dst_ports: [443]
        """;

    [Fact]
    public void An_allowed_address_and_port_names_its_rule_and_the_compiled_element()
    {
        var web = C("web", "198.18.0.2", Https);
        var e = Explain(web, Out("198.19.0.10", 443));
        Assert.True(e.Accepted);
        Assert.Equal(new RuleSource("whalewall.rules", "output[0]", 2), e.Rule);
        Assert.Equal(["out4 198.18.0.2 . 198.19.0.10 . 6 . 0-65535 . 443"], e.Elements.Select(x => x.ToString()));
        // exactly what the compiler gives the kernel
        var compiled = Compiler.Compile(web, ContainerDecider.Decide(DecisionContext.Default, web).Policy, []).Fragment.Elements;
        Assert.All(e.Elements, x => Assert.Contains(x, compiled));
    }

    [Theory]
    [InlineData("198.19.0.10", 80, L4Proto.Tcp)]
    [InlineData("198.19.0.10", 443, L4Proto.Udp)]
    [InlineData("198.19.0.11", 443, L4Proto.Tcp)]
    public void Another_port_protocol_or_address_is_a_default_drop(string address, ushort port, L4Proto proto)
    {
        var e = Explain(C("web", "198.18.0.2", Https), Out(address, port, proto));
        Assert.False(e.Accepted);
        Assert.False(e.Passes);
        Assert.Null(e.Rule);
        Assert.Contains("default drop", e.Reason);
        Assert.Equal(["dropout4 198.18.0.2"], e.Elements.Select(x => x.ToString()));
    }

    [Fact]
    public void A_peer_named_by_a_container_rule_is_reached_both_ways_of_the_check()
    {
        var web = C("web", "198.18.0.2", "output:\n  - container: db\n    proto: tcp\n    dst_ports: [5432]");
        var db = C("db", "198.18.0.3");
        var e = Explain(web, Out("db", 5432), others: [db]);
        Assert.True(e.Accepted);
        Assert.Equal(["egress", "ingress"], e.Hops.Select(h => h.Chain));
        Assert.Equal("output[0]", e.Rule!.Path);
        Assert.Contains(e.Elements, x => x.ToString() == "peer4 198.18.0.2 . 198.18.0.3 . 6 . 0-65535 . 5432");

        // the same flow seen from db: its ingress is opened by web's rule
        var from = Explain(db, In("web", 5432), others: [web]);
        Assert.True(from.Accepted);
        Assert.Equal(("output[0]", "web"), (from.Rule!.Path, from.RuleOwner));

        Assert.False(Explain(web, Out("db", 5433), others: [db]).Accepted);
    }

    [Fact]
    public void An_ips_rule_covering_a_managed_container_does_not_open_its_ingress()
    {
        var other = C("other", "198.18.0.4", "output:\n  - ips: [198.18.0.0/24]");
        var db = C("db", "198.18.0.3");
        var e = Explain(other, Out("db", 5432), others: [db]);
        Assert.False(e.Accepted);
        var drop = e.Hops.Last();
        Assert.Equal(("ingress", "db", false), (drop.Chain, drop.Owner, drop.Accepted));
        Assert.Contains("no container: rule", e.Reason);
        Assert.Equal("egress", e.Hops[0].Chain);
    }

    private static readonly DecisionContext Proxy = DecisionContext.Default with { DnsProxy = true };

    [Fact]
    public void A_hostname_is_open_through_the_containers_own_lookup_and_says_when_it_expires()
    {
        var web = C("web", "198.18.0.2", "output:\n  - hosts: [\"*.test.example\"]\n    proto: tcp\n    dst_ports: [443]");
        var lookup = new DnsLookup("api.test.example", IPAddress.Parse("198.19.0.20"), Now.AddSeconds(60));
        var e = Explain(web, Out("api.test.example", 443), Proxy, lookups: [lookup]);
        Assert.True(e.Accepted);
        Assert.Equal([lookup], e.Dns.ToArray());
        Assert.Equal(["outh4 198.18.0.2 . 198.19.0.20 . 6 . 0-65535 . 443"], e.Elements.Select(x => x.ToString()));
        Assert.Equal("output[0]", e.Rule!.Path);

        var expired = Explain(web, Out("api.test.example", 443), Proxy, lookups: [lookup with { Expires = Now }]);
        Assert.False(expired.Accepted);
        Assert.Contains("would open it", expired.Reason);

        var refused = Explain(web, Out("evil.other.example", 443), Proxy);
        Assert.False(refused.Accepted);
        Assert.Contains("refuses", refused.Reason);
    }

    [Fact]
    public void Port_53_of_a_proxied_container_goes_to_the_proxy()
    {
        var web = C("web", "198.18.0.2", labels: new() { ["dockerwall.outbound"] = "_dns_" }, enabled: false);
        var e = Explain(web, Out("198.19.0.53", 53, L4Proto.Udp), Proxy);
        Assert.True(e.Accepted);
        Assert.Equal("dns_redirect", Assert.Single(e.Hops).Chain);
        Assert.Equal(["dnsproxy4 198.18.0.2"], e.Elements.Select(x => x.ToString()));
    }

    [Fact]
    public void Without_the_proxy_dns_opens_only_the_containers_resolvers()
    {
        var web = C("web", "198.18.0.2", labels: new() { ["dockerwall.outbound"] = "_dns_" }, enabled: false)
            with { DnsServers = [IPAddress.Parse("198.18.0.1")] };
        var e = Explain(web, Out("198.18.0.1", 53, L4Proto.Udp));
        Assert.True(e.Accepted);
        Assert.Equal(new RuleSource("dockerwall.outbound", "[0]", null), e.Rule);
        Assert.False(Explain(web, Out("198.19.0.53", 53, L4Proto.Udp)).Accepted);
    }

    [Fact]
    public void A_published_port_is_open_from_outside_only_through_dnat_and_mapped_ports()
    {
        var ports = new[] { new PublishedPort(80, L4Proto.Tcp, "0.0.0.0", 8080) };
        var rules = "mapped_ports:\n  external:\n    allow: true\n  localhost:\n    allow: true";
        var web = C("web", "198.18.0.2", rules, ports: ports);
        var e = Explain(web, In("198.19.0.99", 80));
        Assert.True(e.Accepted);
        Assert.Equal(new RuleSource("whalewall.rules", "mapped_ports.external", 3), e.Rule);
        Assert.Equal(["pub4 0.0.0.0-255.255.255.255 . 198.18.0.2 . 6 . 80"], e.Elements.Select(x => x.ToString()));
        Assert.False(Explain(web, In("198.19.0.99", 81)).Accepted);
        Assert.True(Explain(web, In("host", 80)).Accepted);

        var closed = Explain(C("web", "198.18.0.2", ports: ports), In("198.19.0.99", 80));
        Assert.False(closed.Accepted);

        // a neighbour container sends directly, not through Docker's DNAT
        var neighbour = C("neighbour", "198.18.0.5", "output:\n  - ips: [198.18.0.0/24]");
        var direct = Explain(web, In("neighbour", 80), others: [neighbour]);
        Assert.False(direct.Accepted);
        Assert.Contains("DNAT", direct.Reason);
    }

    [Fact]
    public void Audit_mode_drops_in_the_verdict_but_passes()
    {
        var web = C("web", "198.18.0.2", Https, labels: new() { ["whalewall.mode"] = "audit" });
        var e = Explain(web, Out("198.19.0.10", 80));
        Assert.False(e.Accepted);
        Assert.True(e.Passes);
        var json = e.ToJson();
        Assert.Equal(("drop", "audit", true), (json["verdict"]!.GetValue<string>(), json["mode"]!.GetValue<string>(), json["passes"]!.GetValue<bool>()));
        Assert.Contains("audit: passes", e.ToText());
        // global audit mode, and a container insisting on enforce under it
        var global = DecisionContext.Default with { Mode = PolicyMode.Audit };
        Assert.True(Explain(C("web", "198.18.0.2", Https), Out("198.19.0.10", 80), global).Passes);
        Assert.False(Explain(C("web", "198.18.0.2", Https, labels: new() { ["whalewall.mode"] = "enforce" }), Out("198.19.0.10", 80), global).Passes);
    }

    [Fact]
    public void An_audited_senders_would_be_drop_names_its_audit_element_and_an_enforced_receiver_still_drops_it()
    {
        var web = C("web", "198.18.0.2", Https, labels: new() { ["whalewall.mode"] = "audit" });
        var e = Explain(web, Out("198.19.0.10", 80));
        Assert.Contains(e.Elements, el => el.ToString().StartsWith("auditout4 "));
        Assert.DoesNotContain(e.Elements, el => el.ToString().StartsWith("dropout4 "));
        // the kernel returns to forward after the audit lookup: the receiver's ingress decides next
        var db = C("db", "198.18.0.3");
        var toDb = Explain(web, Out("db", 5432), others: [db]);
        Assert.False(toDb.Accepted);
        Assert.False(toDb.Passes);
        Assert.Contains(toDb.Hops, h => h.Chain == "ingress" && h.Owner == "db" && !h.Accepted);
        // both audited: it passes
        var auditedDb = C("db", "198.18.0.3", labels: new() { ["whalewall.mode"] = "audit" });
        Assert.True(Explain(web, Out("db", 5432), others: [auditedDb]).Passes);
    }

    [Fact]
    public void Invalid_labels_fail_closed_and_say_why()
    {
        var e = Explain(C("web", "198.18.0.2", "output:\n  - ips: [not-an-address]"), Out("198.19.0.10", 443));
        Assert.False(e.Accepted);
        Assert.StartsWith("fail-closed:", e.Reason);
        Assert.Contains("output[0].ips[0]", e.Reason);
        Assert.Equal(Outcome.FailClosed, e.Outcome);
    }

    [Fact]
    public void Unmanaged_and_unfilterable_containers_are_not_filtered()
    {
        var e = Explain(C("web", "198.18.0.2", enabled: false), Out("198.19.0.10", 443));
        Assert.True(e.Accepted);
        Assert.Equal("unmanaged: not filtered", e.Reason);

        var host = C("web", "198.18.0.2", Https) with { NetworkMode = "host", Networks = [] };
        var u = Explain(host, Out("198.19.0.10", 80));
        Assert.True(u.Accepted);
        Assert.StartsWith("unfilterable:", u.Reason);
    }

    [Fact]
    public void Deny_by_default_neighbours_and_unmanaged_senders_on_gateway_networks()
    {
        var (context, _) = DecisionContext.FromSettings("", null);
        var web = C("web", "198.18.0.2", enabled: false) with { Labels = [] };
        var db = C("db", "198.18.0.3", enabled: false) with { Labels = [] };
        var e = Explain(web, Out("db", 5432), context, others: [db]);
        Assert.True(e.Accepted);
        Assert.Equal("GATEWAY_NETWORKS", e.Rule!.Label);
        Assert.False(Explain(web, Out("198.19.0.10", 443), context, others: [db]).Accepted);
    }

    [Fact]
    public void Icmp_types_are_matched_as_the_kernel_does()
    {
        var web = C("web", "198.18.0.2", "output:\n  - proto: icmp\n    icmp_types: [echo-request]");
        Assert.True(Explain(web, Out("198.19.0.10", 8, L4Proto.Icmp)).Accepted);
        Assert.False(Explain(web, Out("198.19.0.10", 13, L4Proto.Icmp)).Accepted);
    }

    [Fact]
    public void The_first_rule_that_allows_it_alone_decides_even_when_rules_overlap()
    {
        var web = C("web", "198.18.0.2", "output:\n  - ips: [198.19.0.0/24]\n    proto: tcp\n    src_ports: [40000]\n  - ips: [198.19.0.0/16]\n    proto: tcp");
        var e = Explain(web, Out("198.19.0.10", 443));
        Assert.True(e.Accepted);
        Assert.Equal("output[1]", e.Rule!.Path);
        var fromPort = Explain(web, Out("198.19.0.10", 443) with { SourcePort = 40000 });
        Assert.Equal("output[0]", fromPort.Rule!.Path);
    }

    [Theory]
    [InlineData("")]
    [InlineData("\u202e\u0000evil\nname")]
    [InlineData("300.1.1.1")]
    [InlineData("*.*")]
    public void Hostile_peers_are_answered_not_thrown(string peer)
    {
        var e = Explain(C("web", "198.18.0.2", Https), Out(peer, 443));
        Assert.False(e.Accepted);
        // one line per item: what the peer holds cannot start a line of its own
        Assert.All(e.ToText().TrimEnd('\n').Split('\n').Skip(1), line => Assert.StartsWith("  ", line));
        Assert.DoesNotContain('\u202e', e.ToText());
    }

    [Fact]
    public void A_hostile_policy_and_many_containers_are_explained_in_bounded_time()
    {
        // 256 rules of 16 ports each, thousands of other containers, a peer referencing all of them
        var rules = "output:\n" + string.Join("", Enumerable.Range(0, 256).Select(i =>
            $"  - ips: [198.19.{i}.0/24]\n    proto: tcp\n    dst_ports: [{string.Join(", ", Enumerable.Range(1, 16).Select(p => p + i))}]\n"));
        var web = C("web", "198.18.0.2", rules);
        var others = Enumerable.Range(0, 20_000).Select(i => C($"c{i}", $"198.18.{i / 250 % 250}.{i % 250 + 3}", "output:\n  - container: web"));
        var watch = Stopwatch.StartNew();
        var e = Explain(web, Out("198.19.255.1", 300), others: others);
        Assert.False(e.Accepted);
        Explain(web, Out("c19999", 300), others: others);
        // allowed by the last rule only: every rule is compiled alone before it is found
        var last = Explain(web, Out("198.19.255.1", 271));
        Assert.True(last.Accepted);
        Assert.Equal("output[255]", last.Rule!.Path);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"took {watch.Elapsed}");
    }
}
