using System.Text.Json.Nodes;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Metrics;
using WhaleWall.Firewall.Nft;
using Xunit;

namespace WhaleWall.Tests.Metrics;

/// <summary>Per-container counters from listings of the counted sets (a fake kernel that
/// answers <c>list set</c>): monotonic across re-created elements and failed listings.</summary>
public sealed class ContainerCountersTests
{
    private sealed class FakeSets : INftables
    {
        public Dictionary<string, List<(string Val, ulong Packets, ulong Bytes)>> Sets { get; } = new();
        public HashSet<string> Failing { get; } = [];

        public NftResult Run(string json)
        {
            var name = JsonNode.Parse(json)!["nftables"]![0]!["list"]!["set"]!["name"]!.GetValue<string>();
            if (Failing.Contains(name)) return NftResult.Failure("Error: No such file or directory");
            var elems = new JsonArray();
            foreach (var (val, p, b) in Sets.GetValueOrDefault(name) ?? [])
                elems.Add(new JsonObject { ["elem"] = new JsonObject { ["val"] = JsonNode.Parse(val), ["counter"] = new JsonObject { ["packets"] = p, ["bytes"] = b } } });
            var set = new JsonObject { ["family"] = "inet", ["name"] = name, ["table"] = "t", ["elem"] = elems };
            return NftResult.Success(new JsonObject { ["nftables"] = new JsonArray(new JsonObject { ["set"] = set }) }.ToJsonString());
        }
    }

    private static readonly string Out = """{"concat": ["198.18.128.2", "198.19.0.10", "tcp", {"range": [0, 65535]}, 80]}""";
    private static readonly string OutWider = """{"concat": ["198.18.128.2", {"prefix": {"addr": "198.19.0.0", "len": 24}}, "tcp", {"range": [0, 65535]}, 80]}""";

    private static (DaemonView View, string Name) Setup(string name)
    {
        var view = new DaemonView();
        var facts = Facts.Container(name, "198.18.128.2");
        view.Apply(new ContainerNotices.StateChanged(facts.Id, facts, ContainerState.Enforced));
        return (view, name);
    }

    private static double Accepted(string name) =>
        WhaleWallMetrics.ContainerPackets.WithLabels("egress", "accept", name + "-id", name, "", "", "").Value;

    private static double Dropped(string name) =>
        WhaleWallMetrics.ContainerPackets.WithLabels("egress", "drop", name + "-id", name, "", "", "").Value;

    [Fact]
    public void A_re_created_element_adds_its_new_count_and_the_total_never_goes_back()
    {
        var (view, name) = Setup("recreated");
        var kernel = new FakeSets();
        var counters = new ContainerCounters(kernel, "t", view);
        kernel.Sets["out4_2"] = [(Out, 5, 300)];
        counters.Update();
        Assert.Equal(5, Accepted(name));
        kernel.Sets["out4_2"] = [(OutWider, 2, 120)]; // the policy changed: a new element from zero
        counters.Update();
        Assert.Equal(7, Accepted(name));
        kernel.Sets["out4_2"] = [(OutWider, 3, 180)];
        counters.Update();
        Assert.Equal(8, Accepted(name));
    }

    [Fact]
    public void A_set_that_cannot_be_listed_is_not_counted_twice_later()
    {
        var (view, name) = Setup("flaky");
        var kernel = new FakeSets();
        var counters = new ContainerCounters(kernel, "t", view);
        kernel.Sets["dropout4"] = [("\"198.18.128.2\"", 4, 240)];
        counters.Update();
        kernel.Failing.Add("dropout4");
        counters.Update();
        kernel.Failing.Clear();
        kernel.Sets["dropout4"] = [("\"198.18.128.2\"", 6, 360)];
        counters.Update();
        Assert.Equal(6, Dropped(name));
    }

    [Fact]
    public void Elements_of_an_unknown_address_wait_for_their_owner()
    {
        var view = new DaemonView();
        var kernel = new FakeSets { Sets = { ["dropout4"] = [("\"198.18.128.2\"", 3, 180)] } };
        var counters = new ContainerCounters(kernel, "t", view);
        counters.Update();
        var facts = Facts.Container("late", "198.18.128.2");
        view.Apply(new ContainerNotices.StateChanged(facts.Id, facts, ContainerState.Enforced));
        counters.Update();
        Assert.Equal(3, Dropped("late"));
    }

    [Fact]
    public void A_gone_container_loses_its_series_and_its_address_goes_to_the_next_owner()
    {
        var (view, name) = Setup("leaving");
        var kernel = new FakeSets { Sets = { ["dropout4"] = [("\"198.18.128.2\"", 1, 60)] } };
        var counters = new ContainerCounters(kernel, "t", view);
        counters.Update();
        Assert.Contains(WhaleWallMetrics.ContainerPackets.GetAllLabelValues(), l => l[3] == name);

        view.Apply(new ContainerNotices.StateChanged(name + "-id", null, ContainerState.Gone));
        var next = Facts.Container("arriving", "198.18.128.2");
        view.Apply(new ContainerNotices.StateChanged(next.Id, next, ContainerState.Enforced));
        kernel.Sets["dropout4"] = [("\"198.18.128.2\"", 3, 180)];
        counters.Update();
        Assert.DoesNotContain(WhaleWallMetrics.ContainerPackets.GetAllLabelValues(), l => l[3] == name);
        Assert.Equal("arriving-id", view.Current.Owners[System.Net.IPAddress.Parse("198.18.128.2")]);
        Assert.Equal(2, Dropped("arriving"));
    }

    [Fact]
    public void Container_label_values_are_bounded_and_escaped()
    {
        var longName = "n" + new string('x', 5000);
        var view = new DaemonView();
        var facts = Facts.Container(longName, "198.18.128.2", labels: new Dictionary<string, string>
        {
            [WhaleWall.Firewall.Policy.ContainerFacts.ComposeProjectLabel] = new string('p', 300),
            [WhaleWall.Firewall.Policy.ContainerFacts.ComposeServiceLabel] = "svc\nforged 1",
        }) with { Image = new string('i', 200_000) };
        view.Apply(new ContainerNotices.StateChanged(facts.Id, facts, ContainerState.Enforced));
        var kernel = new FakeSets();
        kernel.Sets["out4_2"] = [(Out, 4, 100)];
        new ContainerCounters(kernel, "t", view).Update();

        var bounded = MetricLabel.Bound(longName);
        Assert.Equal(MetricLabel.MaxLength + 1, bounded.Length);
        Assert.EndsWith("…", bounded);
        var series = WhaleWallMetrics.ContainerPackets.GetAllLabelValues().Single(v => v[3] == bounded);
        Assert.All(series, v => Assert.True(v.Length <= MetricLabel.MaxLength + 1, $"{v.Length}"));
        Assert.Equal("svc\\nforged 1", series[6]);
        Assert.Equal(4, WhaleWallMetrics.ContainerPackets.WithLabels(series).Value);
        Assert.Contains(WhaleWallMetrics.DockerwallPackets.GetAllLabelValues(), v => v[1] == bounded && v[2].Length == MetricLabel.MaxLength + 1);
    }
}
