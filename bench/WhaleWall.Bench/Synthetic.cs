using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Bench;

/// <summary>Container facts made up for the bench (this machine cannot run 10,000 containers):
/// container i sits at 198.18.(10 + i/250).(2 + i%250) and opts in with a typical policy of
/// two TCP destinations and DNS, i.e. 4 set elements (managed + 3 allow boxes). Addresses are
/// test addresses only; they never carry traffic in the host namespace.</summary>
public static class Synthetic
{
    public const int MaxContainers = 12_500;

    public static string Id(int i, string prefix = "syn") => $"{prefix}{i:D6}";

    public static IPAddress Address(int i)
    {
        if (i < 0 || i >= MaxContainers) throw new ArgumentOutOfRangeException(nameof(i));
        return IPAddress.Parse($"198.18.{10 + i / 250}.{2 + i % 250}");
    }

    public static string RulesYaml(int i) =>
        $"""
        output:
          - ips: [198.19.{i % 200}.{1 + i % 250}, 198.19.{200 + i % 50}.0/24]
            proto: tcp
            dst_ports: [443]
          - ips: [198.19.0.53]
            proto: udp
            dst_ports: [53]
        """;

    public static ImmutableDictionary<string, string> Labels(int i) => new Dictionary<string, string>
    {
        [LabelKeys.Enabled] = "true",
        [LabelKeys.Rules] = RulesYaml(i),
    }.ToImmutableDictionary();

    public static ContainerFacts Facts(int i, string prefix = "syn") => new(
        Id(i, prefix), $"bench-{i}", true, Labels(i),
        [new NetworkAttachment("bench", "benchnet", Address(i), null)], []);

    /// <summary>Container i as a replica of service i % <paramref name="services"/>: the labels of
    /// that service, its own address.</summary>
    public static ContainerFacts Replica(int i, int services, string prefix = "rep") => Facts(i, prefix) with { Labels = Labels(i % services) };

    /// <summary>The real pure path: labels -> policy -> set elements.</summary>
    public static Fragment Compile(ContainerFacts facts) =>
        Compiler.Compile(facts, LabelParser.Decide(facts.Labels), []).Fragment;

    public static List<Fragment> Fragments(int count, string prefix = "syn") =>
        Enumerable.Range(0, count).Select(i => Compile(Facts(i, prefix))).ToList();
}
