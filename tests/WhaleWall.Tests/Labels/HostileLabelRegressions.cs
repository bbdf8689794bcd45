using System.Collections.Immutable;
using WhaleWall.Firewall.Check;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;
using WhaleWall.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace WhaleWall.Tests.Labels;

/// <summary>The three labels of issue 12 (point 2) that crashed or hung the daemon, by name:
/// each fails closed with a precise error, in bounded time and memory, through the parser, the
/// compiler and `whalewall check`. Before the fix: the first aborted the process (stack
/// overflow), the second never returned, the third took 17 s and 5.8 GB.
/// <para>The in-process tests run the work on a thread of their own with a time limit, so that
/// old code fails them instead of hanging the run (except the stack overflow, which kills any
/// process: <see cref="Whalewall_check_refuses_each_shape_quickly_in_bounded_memory"/> runs
/// `whalewall check` as a child for that; point WHALEWALL_CHECK_DLL at another build to try it).</para></summary>
public class HostileLabelRegressions(ITestOutputHelper output)
{
    // first runs, JIT included: the old code crashed, never returned or took 17 s
    private static readonly TimeSpan CpuBound = WorkMeter.ColdCpuBound;
    private const long AllocationBound = 32L << 20;

    private static ImmutableDictionary<string, string> Labels(string rules) =>
        ImmutableDictionary<string, string>.Empty.Add(LabelKeys.Enabled, "true").Add(LabelKeys.Rules, rules);

    /// <summary>Runs <paramref name="work"/> on its own thread; fails if it takes longer than a
    /// (generous, the machine is shared) wall-clock limit, leaving the thread behind.</summary>
    private T Bounded<T>(string what, Func<T> work)
    {
        (T Result, WorkCost Cost)? done = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try { done = WorkMeter.Measure(work); }
            catch (Exception e) { failure = e; }
        }) { IsBackground = true };
        thread.Start();
        Assert.True(thread.Join(TimeSpan.FromSeconds(30)), $"{what}: still running after 30 s");
        if (failure is not null) throw new Xunit.Sdk.XunitException($"{what} threw: {failure}");
        var (result, cost) = done!.Value;
        output.WriteLine($"{what}: {cost}");
        Assert.True(cost.Cpu < CpuBound, $"{what}: {cost}");
        Assert.True(cost.Allocated < AllocationBound, $"{what}: {cost}");
        return result;
    }

    private void FailsClosedEverywhere(string shape, string rules, string path, int? line, string message)
    {
        var labels = Labels(rules);
        var decision = Bounded($"{shape}: parse", () => LabelParser.Decide(labels));
        var error = Assert.Single(Assert.IsType<PolicyDecision.FailClosed>(decision).Errors);
        Assert.Equal((LabelKeys.Rules, path, line), (error.Label, error.Path, error.Line));
        Assert.Contains(message, error.Message);

        var self = Facts.Container("hostile", "198.18.128.2", rules, ipv6: "2001:db8:128::2");
        var compiled = Bounded($"{shape}: compile", () => Compiler.Compile(self, decision, []));
        Assert.All(compiled.Fragment.Elements, e => Assert.True(NftSets.KeptWhenFailClosed(e.Set), e.Key));
        Assert.Contains(compiled.Fragment.Elements, e => e.Key == "managed4 198.18.128.2");
        Assert.Empty(compiled.Fragment.ChainsOrEmpty);

        var report = Bounded($"{shape}: check report", () => CheckReport.For([new ComposeService("hostile", labels, [])], printNft: true));
        Assert.False(report.Valid);
        Assert.Contains("hostile: INVALID, would be drop-all:", report.Text);
        Assert.Contains(message, report.Text);
    }

    [Fact]
    public void Deep_nesting_of_60_KB_fails_closed_instead_of_overflowing_the_stack() =>
        FailsClosedEverywhere("deep-nesting", HostileLabels.DeepNesting(), "", 1, "nested deeper than 16 levels");

    [Fact]
    public void Alias_graph_used_as_a_mapping_key_fails_closed_instead_of_hashing_forever() =>
        FailsClosedEverywhere("alias-graph-as-key", HostileLabels.AliasGraphAsKey(), "", 15, "more than 65536 nodes once aliases are expanded");

    [Fact]
    public void Multiplicative_rule_fails_closed_before_any_grant_is_built() =>
        FailsClosedEverywhere("multiplicative", HostileLabels.Multiplicative(), "output[0]", 1,
            "this rule expands to 16777216 set elements per container address (256 destinations x 256 source ports or ICMP types x 256 destination ports)");

    [Fact]
    public void Multiplicative_policy_that_skips_the_parser_is_counted_by_the_compiler_before_it_builds()
    {
        // the compiler is total on any policy, not only on what the parser lets through
        var ports = ImmutableArray.CreateRange(Enumerable.Range(0, 256).Select(i => new PortRange((ushort)(1000 + i), (ushort)(1000 + i))));
        var ips = ImmutableArray.CreateRange(Enumerable.Range(0, 256).Select(i => new AddressRange(IpFamily.V4, (UInt128)(0xC6130000 + i), (UInt128)(0xC6130000 + i))));
        var policy = ContainerPolicy.DropAll with { Output = [new OutputRule(null, ips, null, L4Proto.Tcp, ports, ports)] };
        var self = Facts.Container("hostile", "198.18.128.2");
        var result = Bounded("multiplicative: compile without the parser", () => Compiler.Compile(self, new PolicyDecision.Enforced(policy), []));
        Assert.Equal("policy expands to 16777216 set elements, more than the limit of 4096; dropping all traffic", result.Error);
        Assert.All(result.Fragment.Elements, e => Assert.True(NftSets.KeptWhenFailClosed(e.Set), e.Key));
    }

    public static TheoryData<string> Shapes() => [.. HostileLabels.Reproduced.Keys];

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Hostile_shape_in_a_compose_file_is_refused_or_fails_that_service_closed(string shape)
    {
        var rules = HostileLabels.Reproduced[shape];
        // as a label value (a block scalar), and as the compose file's own YAML
        var asLabel = "services:\n  hostile:\n    labels:\n      whalewall.enabled: \"true\"\n      whalewall.rules: |\n" +
                      string.Concat(rules.Split('\n').Select(l => "        " + l + "\n"));
        var parsed = Bounded($"{shape}: compose label", () => ComposeFile.Parse(asLabel, "p"));
        Assert.Null(parsed.Error);
        Assert.False(Bounded($"{shape}: compose report", () => CheckReport.For(parsed.Services, printNft: false)).Valid);

        var asFile = "services:\n  web:\n    image: x\n" + rules.Replace("output: ", "x-hostile: ") + "\n";
        var refused = Bounded($"{shape}: compose file", () => ComposeFile.Parse(asFile, "p"));
        if (shape != "multiplicative") Assert.NotNull(refused.Error); // the others are YAML-level attacks
        output.WriteLine($"{shape}: {refused.Error ?? "read"}");
    }

    /// <summary>The built `whalewall check`, as a child process with the 1.5 MiB stack of a .NET
    /// worker thread (where the daemon parses labels): before the fix the deep label aborted it
    /// (SIGABRT, exit 134; with the 8 MiB main-thread stack it sometimes got through after ~20 s
    /// of CPU), the alias key hung it, the multiplicative rule took 17 s and 5.8 GB.</summary>
    [Theory]
    [InlineData("deep-nesting", "nested deeper than 16 levels")]
    [InlineData("alias-graph-as-key", "nodes once aliases are expanded")]
    [InlineData("multiplicative", "this rule expands to 16777216 set elements")]
    public void Whalewall_check_refuses_each_shape_quickly_in_bounded_memory(string shape, string message)
    {
        var dll = Environment.GetEnvironmentVariable("WHALEWALL_CHECK_DLL") is { Length: > 0 } p ? p : Path.Combine(AppContext.BaseDirectory, "whalewall.dll");
        var outcome = ChildRun.Run(TimeSpan.FromSeconds(60), maxRssKiB: 400 * 1024, stackKiB: 1536, WhaleWallDaemon.DotnetHost(), dll, "check",
            "--label", $"{LabelKeys.Enabled}=true", "--label", $"{LabelKeys.Rules}={HostileLabels.Reproduced[shape]}");
        output.WriteLine($"{shape}: {outcome}\n{Cli.Tail(outcome.Output, 5)}");
        Assert.False(outcome.Aborted, $"{shape}: whalewall check aborted (stack overflow?): {outcome}");
        Assert.False(outcome.TimedOut, $"{shape}: {outcome}");
        Assert.True(outcome.ExitCode == 1, $"{shape}: expected exit 1 (invalid labels), got {outcome}\n{Cli.Tail(outcome.Output, 5)}");
        Assert.Contains("labels: INVALID, would be drop-all:", outcome.Output);
        Assert.Contains(message, outcome.Output);
        // a whole process: runtime start-up included (~0.5 s CPU, ~40 MiB)
        Assert.True(outcome.Cpu < TimeSpan.FromSeconds(5), $"{shape}: {outcome}");
        Assert.True(outcome.PeakRssKiB < 200 * 1024, $"{shape}: {outcome}");
    }
}
