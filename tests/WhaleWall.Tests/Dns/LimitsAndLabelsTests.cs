using System.Collections.Immutable;
using WhaleWall.Firewall.Dns;
using WhaleWall.Firewall.Policy;
using Xunit;
using static WhaleWall.Tests.Dns.DnsTestData;

namespace WhaleWall.Tests.Dns;

public class LimitsAndLabelsTests
{
    [Fact]
    public void The_token_bucket_allows_a_burst_then_the_rate()
    {
        var limit = new RateLimit(PerSecond: 10, Burst: 5);
        var bucket = TokenBucket.Full(limit, T0);
        var allowed = 0;
        for (var i = 0; i < 20; i++)
        {
            (var ok, bucket) = bucket.Take(limit, T0);
            if (ok) allowed++;
        }
        Assert.Equal(5, allowed);
        // one second later: 10 more tokens, capped at the burst of 5
        allowed = 0;
        for (var i = 0; i < 20; i++)
        {
            (var ok, bucket) = bucket.Take(limit, T0 + TimeSpan.FromSeconds(1));
            if (ok) allowed++;
        }
        Assert.Equal(5, allowed);
        // 100 ms later: one token
        var (one, b2) = bucket.Take(limit, T0 + TimeSpan.FromSeconds(1.1));
        Assert.True(one);
        Assert.False(b2.Take(limit, T0 + TimeSpan.FromSeconds(1.1)).Allowed);
        // a clock that goes back refills nothing
        Assert.False(b2.Take(limit, T0).Allowed);
    }

    [Fact]
    public void Dns_labels_parse_to_values_and_errors()
    {
        var none = DnsLabels.Parse(new Dictionary<string, string>());
        Assert.Equal(RejectMode.Refused, none.Reject);
        Assert.Empty(none.ExtraTypes);
        Assert.Empty(none.Errors);

        var set = DnsLabels.Parse(new Dictionary<string, string> { [DnsLabels.Reject] = " NXDomain ", [DnsLabels.Types] = "https, SVCB,A" });
        Assert.Equal(RejectMode.NxDomain, set.Reject);
        Assert.Equal([DnsTypes.SVCB, DnsTypes.HTTPS], set.ExtraTypes.Order().ToArray());
        Assert.Empty(set.Errors);

        var bad = DnsLabels.Parse(new Dictionary<string, string> { [DnsLabels.Reject] = "drop", [DnsLabels.Types] = "HTTPS,ANY,AXFR,\n" });
        Assert.Equal(4, bad.Errors.Length);
        Assert.All(bad.Errors, e => Assert.DoesNotContain("\n", e.Message));
    }

    private static OutputRule Rule(L4Proto? proto = null, PortRange[]? ports = null, string[]? hosts = null, bool toResolvers = false) =>
        new(null, [], null, proto, [], ports is null ? [] : [.. ports], ToResolvers: toResolvers, Hosts: hosts is null ? default : [.. hosts]);

    [Fact]
    public void Dns_and_port_53_rules_resolve_any_name_and_only_hosts_open_addresses()
    {
        DnsPolicy Of(params OutputRule[] rules) => DnsPolicy.From(new ContainerPolicy([.. rules], MappedPortsPolicy.Closed), RejectMode.Refused, []);
        var hostsOnly = Of(Rule(L4Proto.Tcp, [new PortRange(443, 443)], ["api.example.com", "*.svc.example.test"]));
        Assert.False(hostsOnly.ResolveAny);
        Assert.True(hostsOnly.Names.Matches(WhaleWall.Firewall.Names.DnsName.Parse("a.svc.example.test")));
        Assert.True(Of(Rule(toResolvers: true)).ResolveAny);                              // _dns_
        Assert.True(Of(Rule(L4Proto.Udp, [new PortRange(53, 53)])).ResolveAny);           // whalewall's own example
        Assert.True(Of(Rule(L4Proto.Tcp, [new PortRange(1, 1024)])).ResolveAny);
        Assert.True(Of(Rule(null, null)).ResolveAny);                                     // any protocol, any port
        Assert.False(Of(Rule(L4Proto.Icmp)).ResolveAny);
        Assert.False(Of(Rule(L4Proto.Udp, [new PortRange(54, 100)])).ResolveAny);
        Assert.False(DnsPolicy.From(ContainerPolicy.DropAll, RejectMode.Refused, []).ResolveAny);
    }
}
