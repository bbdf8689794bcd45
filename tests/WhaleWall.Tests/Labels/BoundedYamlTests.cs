using WhaleWall.Firewall.Labels;
using WhaleWall.TestSupport;
using YamlDotNet.RepresentationModel;
using Xunit;

namespace WhaleWall.Tests.Labels;

/// <summary>The loader refuses, before building a tree, what would make YamlDotNet recurse
/// without bound or hash exponentially, and counts aliases by the size of what they name.</summary>
public class BoundedYamlTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly BoundedYaml.Limits Small = new(MaxDepth: 4, MaxAliases: 3, MaxNodes: 20);

    private static BoundedYaml.Problem Refused(string yaml, BoundedYaml.Limits? limits = null)
    {
        var result = BoundedYaml.Load(yaml, limits ?? Small);
        Assert.True(result.Documents.IsEmpty);
        return Assert.NotNull(result.Error);
    }

    [Theory]
    [InlineData("a: [[[x]]]\n")] // 4 levels
    [InlineData("a: &l [1, 2]\nb: *l\nc: *l\nd: *l\n")] // 3 aliases, 1 + 2 * (3 + 1) + 3 * 3 nodes = 18
    [InlineData("? x\n: y\n")]
    [InlineData("a: &s x\nb: *s\n")]
    public void Within_the_limits_loads(string yaml)
    {
        var result = BoundedYaml.Load(yaml, Small);
        Assert.Null(result.Error);
        Assert.IsType<YamlMappingNode>(Assert.Single(result.Documents));
    }

    [Theory]
    [InlineData("a: [[[[x]]]]\n", 1, "nested deeper than 4 levels")]
    [InlineData("a:\n b:\n  c:\n   d:\n    e: x\n", 5, "nested deeper than 4 levels")]
    [InlineData("a: &k x\n? *k\n: 1\n", 2, "alias (`*k`) cannot be a mapping key")]
    [InlineData("a: &k x\n*k : 1\n", 2, "alias (`*k`) cannot be a mapping key")]
    [InlineData("? [x]\n: 1\n", 1, "a list or mapping cannot be a mapping key")]
    [InlineData("{[x]: 1}\n", 1, "a list or mapping cannot be a mapping key")]
    [InlineData("? {a: b}\n: 1\n", 1, "a list or mapping cannot be a mapping key")]
    [InlineData("a: &s x\nb: [*s, *s, *s, *s]\n", 2, "more than 3 aliases")]
    [InlineData("a: &l [1, 2, 3, 4, 5, 6, 7, 8]\nb: *l\nc: *l\n", 2, "more than 20 nodes once aliases are expanded")]
    [InlineData("a: [*nowhere]\n", 1, "alias `*nowhere` names no node before it")]
    [InlineData("a: &loop [*loop]\n", 1, "alias `*loop` is inside the node it names")]
    [InlineData("a: &r 1\nb: &r [*r]\n", 2, "alias `*r` is inside the node it names")]
    [InlineData("a: [\n", 2, "invalid YAML")]
    public void Refused_with_line_and_reason(string yaml, int line, string message)
    {
        var problem = Refused(yaml);
        Assert.Equal(line, problem.Line);
        Assert.Contains(message, problem.Message);
    }

    [Fact]
    public void An_alias_counts_the_expanded_size_of_the_node_it_names()
    {
        // each level doubles: 2^n leaves behind n + 1 short lines
        var within = "a0: &a0 [x, x]\n" + string.Concat(Enumerable.Range(1, 3).Select(n => $"a{n}: &a{n} [*a{n - 1}, *a{n - 1}]\n"));
        Assert.Null(BoundedYaml.Scan(within, new(16, 100, 64)));
        Assert.Contains("nodes once aliases are expanded", BoundedYaml.Scan(within + "a4: &a4 [*a3, *a3]\n", new(16, 100, 64))!.Value.Message);
    }

    [Fact]
    public void Anchors_do_not_carry_over_into_the_next_document() =>
        Assert.Contains("names no node", Refused("a: &x 1\n---\nb: *x\n").Message);

    public static TheoryData<string, string> Hostile() => new()
    {
        { "deep-nesting", HostileLabels.DeepNesting() },
        { "deep-block-mappings", HostileLabels.DeepBlockMappings(300) },
        { "alias-graph-as-key", HostileLabels.AliasGraphAsKey() },
        { "alias-graph-inside-key", HostileLabels.AliasGraphInsideKey() },
        { "billion-laughs", HostileLabels.BillionLaughs() },
        { "self-reference", HostileLabels.SelfReference },
    };

    [Theory]
    [MemberData(nameof(Hostile))]
    public void Hostile_shapes_are_refused_quickly_and_cheaply(string name, string yaml)
    {
        foreach (var limits in new[] { BoundedYaml.Label, BoundedYaml.Compose })
        {
            var result = BoundedYaml.Load(yaml, limits);
            var cost = WorkMeter.Hot(() => BoundedYaml.Load(yaml, limits));
            output.WriteLine($"{name}, depth {limits.MaxDepth}: {cost}: {result.Error}");
            Assert.True(result.Error is not null, $"{name}: expected a refusal");
            Assert.True(cost.Cpu < WorkMeter.HotCpuBound, $"{name}: {cost}");
            Assert.True(cost.Allocated < 4 << 20, $"{name}: {cost}");
        }
    }
}
