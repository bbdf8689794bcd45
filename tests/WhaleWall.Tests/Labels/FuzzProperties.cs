using System.Collections.Immutable;
using System.Net;
using FsCheck;
using FsCheck.Fluent;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace WhaleWall.Tests.Labels;

/// <summary>Generated and mutated label sets: 100,000 per run (WHALEWALL_FUZZ_COUNT overrides).</summary>
public class FuzzProperties(ITestOutputHelper output)
{
    private static int Count => int.TryParse(Environment.GetEnvironmentVariable("WHALEWALL_FUZZ_COUNT"), out var n) ? n : 100_000;

    private static readonly ImmutableArray<ContainerFacts> Peers =
    [
        Facts.Container("db", "198.18.128.3", enabled: false, ipv6: "2001:db8:128::3"),
        Facts.Container("web", "198.18.128.4", enabled: false),
    ];

    [Fact]
    public void Parser_never_throws_invalid_labels_compile_to_drop_all_valid_ones_to_disjoint_elements()
    {
        var stats = new int[3];
        var reasons = new Dictionary<string, int>();
        Prop.ForAll(LabelGen.Any.ToArbitrary(), yaml =>
        {
            var self = Facts.Container("self", "198.18.128.2", yaml, ipv6: "2001:db8:128::2",
                ports: [new PublishedPort(8080, L4Proto.Tcp, "0.0.0.0", 18080)]);
            var decision = ContainerDecider.Decide(DecisionContext.Default, self).Policy;
            var result = Compiler.Compile(self, decision, Peers);
            var fragment = result.Fragment;
            switch (decision)
            {
                case PolicyDecision.FailClosed failed:
                    stats[0]++;
                    var reason = System.Text.RegularExpressions.Regex.Replace(failed.Errors[0].Message, "\"[^\"]*\"|`[^`]*`|[0-9]+", "_");
                    reasons[reason] = reasons.GetValueOrDefault(reason) + 1;
                    return failed.Errors.All(e => e.Label.Length > 0 && e.Message.Length > 0) &&
                           fragment.Elements.All(e => NftSets.KeptWhenFailClosed(e.Set)) && fragment.ChainsOrEmpty.IsEmpty;
                case PolicyDecision.Enforced:
                    stats[result.Error is null ? 1 : 2]++;
                    return fragment.Elements.Any(e => e.Set == "managed4") && DisjointPerSet(fragment);
                default:
                    return false; // every generated set opts in
            }
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(Count).WithQuietOnSuccess(true));
        output.WriteLine($"{Count} label sets: {stats[0]} invalid (drop-all), {stats[1]} valid, {stats[2]} valid but too large (drop-all)");
        foreach (var (reason, n) in reasons.OrderByDescending(r => r.Value).Take(12)) output.WriteLine($"  {n,7} {reason}");
        Assert.True(stats[0] > Count / 10 && stats[1] > Count / 10, "the generator must produce both valid and invalid sets");
    }

    private static bool DisjointPerSet(Fragment fragment)
    {
        foreach (var group in fragment.Elements.Where(e => e.Fields.Length > 1).GroupBy(e => e.Set))
        {
            var boxes = group.Select(e => e.Fields).ToList();
            for (var i = 0; i < boxes.Count; i++)
            for (var j = i + 1; j < boxes.Count; j++)
                if (BoxSet.Intersects(boxes[i], boxes[j])) return false;
        }
        return true;
    }

    private static int HostileCount => int.TryParse(Environment.GetEnvironmentVariable("WHALEWALL_FUZZ_HOSTILE_COUNT"), out var n) ? n : 400;

    /// <summary>Deep nesting, alias graphs (as values, keys, cycles, billion laughs) and
    /// multiplicative rules, generated and mutated: each decides and compiles without throwing,
    /// within a CPU and an allocation bound; an invalid one is drop-all.</summary>
    [Fact]
    public void Hostile_labels_decide_and_compile_in_bounded_time_and_memory_and_fail_closed()
    {
        var worst = (Cost: default(WorkCost), Yaml: "");
        var stats = new int[3];
        // the bounds are for hot code: compile the paths once first
        foreach (var warm in LabelGen.Hostile.Sample(40))
            Compiler.Compile(Facts.Container("w", "198.18.128.9", warm), LabelParser.Decide(Facts.Container("w", "198.18.128.9", warm).Labels), Peers);
        Prop.ForAll(LabelGen.Hostile.ToArbitrary(), yaml =>
        {
            var self = Facts.Container("self", "198.18.128.2", yaml, ipv6: "2001:db8:128::2",
                ports: [new PublishedPort(8080, L4Proto.Tcp, "0.0.0.0", 18080)]);
            var ((decision, result), cost) = WorkMeter.Measure(() =>
            {
                var d = ContainerDecider.Decide(DecisionContext.Default, self).Policy;
                return (d, Compiler.Compile(self, d, Peers));
            });
            if (cost.Cpu > worst.Cost.Cpu) worst = (cost, yaml);
            if (cost.Cpu > WorkMeter.HotCpuBound || cost.Allocated > 64L << 20)
                throw new Exception($"{cost} for a label of {yaml.Length} characters:\n{yaml[..Math.Min(300, yaml.Length)]}");
            var fragment = result.Fragment;
            switch (decision)
            {
                case PolicyDecision.FailClosed failed:
                    stats[0]++;
                    return failed.Errors.All(e => e.Message.Length > 0 && !e.ToString().Contains('\n')) &&
                           fragment.Elements.All(e => NftSets.KeptWhenFailClosed(e.Set)) && fragment.ChainsOrEmpty.IsEmpty;
                case PolicyDecision.Enforced when result.Error is not null:
                    stats[2]++;
                    return fragment.Elements.All(e => NftSets.KeptWhenFailClosed(e.Set)) && fragment.ChainsOrEmpty.IsEmpty;
                case PolicyDecision.Enforced:
                    stats[1]++;
                    return fragment.Elements.Count(e => !NftSets.KeptWhenFailClosed(e.Set)) <= Compiler.MaxElements && DisjointPerSet(fragment);
                default:
                    return false;
            }
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(HostileCount).WithQuietOnSuccess(true));
        output.WriteLine($"{HostileCount} hostile label sets: {stats[0]} invalid, {stats[1]} valid, {stats[2]} valid but refused by the compiler");
        output.WriteLine($"worst: {worst.Cost} for {worst.Yaml.Length} characters: {worst.Yaml[..Math.Min(120, worst.Yaml.Length)].Replace("\n", "\\n")}");
        Assert.True(stats[0] > 0 && stats[1] + stats[2] > 0, "the generator must produce accepted and refused labels");
    }
}
