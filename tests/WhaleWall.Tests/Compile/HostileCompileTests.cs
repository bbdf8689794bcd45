using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace WhaleWall.Tests.Compile;

/// <summary>Policies the parser accepts (each within the element limit per address) written
/// to make the compiler work hard: overlapping ranges that split into many pieces, many
/// peers, many DNS answers. Each compile stays total, bounded in CPU time and allocation,
/// and either succeeds with disjoint elements or fails closed with a reason.</summary>
public class HostileCompileTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CpuBound = WorkMeter.HotCpuBound;
    private const long AllocationBound = 64L << 20;

    private static string Range(int lo, int hi) => $"{lo}-{hi}";

    private static string List(IEnumerable<string> items) => "[" + string.Join(", ", items) + "]";

    /// <summary>64 nested address ranges x 64 nested port ranges: every pair of boxes overlaps.</summary>
    private static string Nested() =>
        $"output:\n  - ips: {List(Enumerable.Range(0, 64).Select(i => $"198.19.{i}.0-198.19.{255 - i}.255"))}\n" +
        $"    proto: tcp\n    dst_ports: {List(Enumerable.Range(0, 64).Select(i => Range(1 + i, 65535 - i)))}\n";

    /// <summary>64 address ranges x 64 port ranges, each overlapping its next 63 neighbours (staircases).</summary>
    private static string Crossing() =>
        $"output:\n  - ips: {List(Enumerable.Range(0, 64).Select(i => $"198.19.{i}.0-198.19.{i + 64}.255"))}\n" +
        $"    proto: tcp\n    dst_ports: {List(Enumerable.Range(0, 64).Select(i => Range(1000 + 10 * i, 1640 + 10 * i)))}\n";

    /// <summary>Boxes that each overlap all others in one field only (the best separating field
    /// still leaves many pairs): 32 x 128 ranges crossing in a checkerboard.</summary>
    private static string Checkerboard() =>
        $"output:\n  - ips: {List(Enumerable.Range(0, 32).Select(i => $"198.19.{i * 2}.0-198.19.{i * 2 + 40}.255"))}\n" +
        $"    proto: udp\n    src_ports: {List(Enumerable.Range(0, 128).Select(i => Range(2000 + 3 * i, 2400 + 3 * i)))}\n";

    /// <summary>256 rules of 16 boxes each, every rule with its own log prefix (a chain of its
    /// own: pieces keep their rule's chain and are not merged across rules); each rule's boxes
    /// cross each other and its neighbours' (under the pair budget, so they are all cut).</summary>
    private static string ManyChains(bool all = false) =>
        "output:\n" + string.Concat(Enumerable.Range(0, 256).Select(r =>
            $"  - ips: {List(Enumerable.Range(0, 4).Select(i => all ? $"198.19.{r % 200}.0-198.19.{r % 200 + 4 * i + 1}.255" : $"198.18.{r}.{i * 16}-198.18.{Math.Min(255, r + 1)}.{i * 16 + 100}"))}\n" +
            $"    proto: tcp\n    dst_ports: {List(Enumerable.Range(0, 4).Select(i => all ? Range(100 + r + i, 5000 - i) : Range(100 + 10 * i, 200 + 10 * i)))}\n" +
            $"    log_prefix: \"rule {r} \"\n"));

    /// <summary>A legitimate large policy: 16 addresses x 256 single ports, nothing overlaps.</summary>
    private static string LargeDisjoint() =>
        $"output:\n  - ips: {List(Enumerable.Range(0, 16).Select(i => $"198.19.{i}.1"))}\n" +
        $"    proto: tcp\n    dst_ports: {List(Enumerable.Range(0, 256).Select(i => (1000 + 2 * i).ToString()))}\n";

    public static TheoryData<string> Shapes() => ["nested", "crossing", "checkerboard", "many-chains", "many-chains-all-overlapping", "large-disjoint", "many-peers", "many-dns-answers"];

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Hostile_policy_compiles_within_bounds_to_disjoint_elements_or_drop_all(string shape)
    {
        var peers = new List<ContainerFacts>();
        IReadOnlyDictionary<string, HostAddresses>? hosts = null;
        string yaml;
        switch (shape)
        {
            case "nested": yaml = Nested(); break;
            case "crossing": yaml = Crossing(); break;
            case "checkerboard": yaml = Checkerboard(); break;
            case "many-chains": yaml = ManyChains(); break;
            case "many-chains-all-overlapping": yaml = ManyChains(all: true); break;
            case "large-disjoint": yaml = LargeDisjoint(); break;
            case "many-peers":
                // one compose service with 2,000 replicas, all named by the rule
                yaml = "output:\n  - container: db\n    proto: tcp\n    dst_ports: [5432, 5433, 5434]\n";
                peers.AddRange(Enumerable.Range(0, 2000).Select(i => Facts.Container($"db-{i}", $"198.18.{130 + i / 250}.{i % 250 + 2}", enabled: false,
                    labels: new Dictionary<string, string> { [ContainerFacts.ComposeProjectLabel] = "p", [ContainerFacts.ComposeServiceLabel] = "db" })));
                break;
            case "many-dns-answers":
                yaml = "output:\n  - hosts: [" + string.Join(", ", Enumerable.Range(0, 64).Select(i => $"h{i}.example.com")) + "]\n    proto: tcp\n    dst_ports: [443, 8443]\n";
                var expires = DateTimeOffset.UnixEpoch.AddDays(20000);
                hosts = Enumerable.Range(0, 64).ToDictionary(i => $"h{i}.example.com", i => new HostAddresses($"h{i}.example.com",
                    [.. Enumerable.Range(0, 64).Select(a => (IPAddress.Parse($"198.19.{a}.{i + 1}"), expires.AddSeconds(a)))]));
                break;
            default: throw new ArgumentException(shape);
        }
        var self = Facts.Container("self", "198.18.128.2", yaml, ipv6: "2001:db8:128::2",
            labels: new Dictionary<string, string> { [ContainerFacts.ComposeProjectLabel] = "p", [ContainerFacts.ComposeServiceLabel] = "app" });
        var decision = LabelParser.Decide(self.Labels);
        Assert.True(decision is PolicyDecision.Enforced, $"{shape}: the parser must accept it, got {string.Join("; ", (decision as PolicyDecision.FailClosed)?.Errors ?? [])}");

        var (result, cold) = WorkMeter.Measure(() => Compiler.Compile(self, decision, peers, hosts));
        var cost = WorkMeter.Hot(() => Compiler.Compile(self, decision, peers, hosts));
        output.WriteLine($"{shape}: first run {cold}");
        var pieces = result.Fragment.Elements.Count(e => !NftSets.KeptWhenFailClosed(e.Set));
        output.WriteLine($"{shape}: {cost}; {pieces} elements; {result.Error ?? "ok"}");

        Assert.True(cost.Cpu < CpuBound, $"{shape}: {cost}");
        Assert.True(cost.Allocated < AllocationBound, $"{shape}: {cost}");
        if (result.Error is not null)
            Assert.All(result.Fragment.Elements, e => Assert.True(NftSets.KeptWhenFailClosed(e.Set), e.Key));
        else
        {
            Assert.InRange(pieces, 1, Compiler.MaxElements);
            foreach (var set in result.Fragment.Elements.Where(e => e.Fields.Length > 1).GroupBy(e => e.Set))
            {
                var boxes = set.Select(e => e.Fields).ToList();
                for (var i = 0; i < boxes.Count; i++)
                for (var j = i + 1; j < boxes.Count; j++)
                    Assert.False(BoxSet.Intersects(boxes[i], boxes[j]), $"{shape}: {set.Key} overlaps");
            }
        }
    }
    /// <summary>The review's `hosts:` shape, past the parser (which now refuses it): 16 rules of
    /// `proto: icmp` with 256 names each, every name with 32 answers. Its elements are counted
    /// before they are built: before the fix each compile built 131,072 products (94 MB, 160 ms)
    /// and only then found them past the limit; a DNS answer recompiles, so this was per answer.</summary>
    [Fact]
    public void Hosts_past_the_limit_are_refused_before_their_elements_are_built()
    {
        var rules = Enumerable.Range(0, 16).Select(r => new OutputRule(null, [], null, L4Proto.Icmp, [], [],
            Hosts: [.. Enumerable.Range(0, 256).Select(i => $"{r:x}{i:x2}.io")])).ToImmutableArray();
        var decision = new PolicyDecision.Enforced(new ContainerPolicy(rules, MappedPortsPolicy.Closed));
        var expires = DateTimeOffset.UnixEpoch.AddDays(20000);
        var hosts = rules.SelectMany(r => r.HostsOrEmpty).Select((name, k) => new HostAddresses(name,
                [.. Enumerable.Range(0, PolicySize.MaxAddressesPerHost).Select(a =>
                    (Addresses.ToAddress(IpFamily.V4, (UInt128)(0xC6120000u + (uint)(k * 32 + a))), expires.AddSeconds(a)))]))
            .ToDictionary(h => h.Name);
        var self = Facts.Container("self", "198.18.128.2", "output: []", ipv6: "2001:db8:128::2");

        var cost = WorkMeter.Hot(() => Compiler.Compile(self, decision, [], hosts));
        var result = Compiler.Compile(self, decision, [], hosts);
        output.WriteLine($"{cost}; {result.Error}");

        Assert.Contains($"more than the limit of {Compiler.MaxElements}", result.Error);
        Assert.All(result.Fragment.Elements, e => Assert.True(NftSets.KeptWhenFailClosed(e.Set), e.Key));
        Assert.True(cost.Cpu < CpuBound, cost.ToString());
        Assert.True(cost.Allocated < 1L << 20, cost.ToString());
    }
}
