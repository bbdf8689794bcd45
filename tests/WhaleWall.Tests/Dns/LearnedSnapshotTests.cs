using System.Collections.Immutable;
using System.Diagnostics;
using System.Net;
using System.Text;
using WhaleWall.Firewall.Dns;
using WhaleWall.Firewall.Names;
using Xunit;

namespace WhaleWall.Tests.Dns;

/// <summary><c>learned.json</c> (docs/dns-proxy.md "Restart"): what survives a daemon restart,
/// and a file that is wrong or hostile never opens more than the proxy could have.</summary>
public class LearnedSnapshotTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan MaxTimeout = TimeSpan.FromHours(1) + TimeSpan.FromSeconds(30);
    private const string A = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    private const string B = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    private static ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>> Learned(params (string Host, string Address, int Seconds)[] entries)
    {
        var map = LearnedMap.Empty;
        foreach (var (host, address, seconds) in entries)
            map = map.SetItem(host, (map.GetValueOrDefault(host) ?? ImmutableDictionary<IPAddress, DateTimeOffset>.Empty)
                .SetItem(IPAddress.Parse(address), Now.AddSeconds(seconds)));
        return map;
    }

    private static LearnedSnapshot.Parsed Parse(string json, int perContainer = 1024) =>
        LearnedSnapshot.Parse(Encoding.UTF8.GetBytes(json), Now, MaxTimeout, perContainer);

    private static string File(string containers) => "{\"version\":1,\"containers\":{" + containers + "}}";

    [Fact]
    public void What_is_written_reads_back_the_same_keyed_by_container_id()
    {
        var a = Learned(("*.cdn.example.test", "198.19.0.10", 30), ("*.cdn.example.test", "2001:db8:19::10", 30), ("api.example.test", "198.19.0.11", 3600));
        var b = Learned(("**.svc.example.test", "198.19.0.12", 5));
        var json = LearnedSnapshot.ToJson(new Dictionary<string, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>>> { [A] = a, [B] = b }, Now);
        var read = LearnedSnapshot.Parse(json, Now, MaxTimeout, 1024);

        Assert.Empty(read.Problems);
        Assert.Equal([A, B], read.Containers.Keys.Order());
        foreach (var (id, expected) in new[] { (A, a), (B, b) })
        {
            var got = read.Containers[id];
            Assert.Equal(expected.Keys.Order(), got.Keys.Order());
            foreach (var (host, addresses) in expected)
                Assert.Equal(addresses.OrderBy(x => x.Key.ToString()), got[host].OrderBy(x => x.Key.ToString()));
        }
    }

    [Fact]
    public void Expired_addresses_are_neither_written_nor_read_and_empty_containers_vanish()
    {
        var json = LearnedSnapshot.ToJson(new Dictionary<string, ImmutableDictionary<string, ImmutableDictionary<IPAddress, DateTimeOffset>>>
        {
            [A] = Learned(("*.cdn.example.test", "198.19.0.10", 10), ("*.cdn.example.test", "198.19.0.11", -1)),
            [B] = Learned(("api.example.test", "198.19.0.12", 0)),
        }, Now);
        Assert.DoesNotContain("198.19.0.11", Encoding.UTF8.GetString(json));
        Assert.DoesNotContain(B, Encoding.UTF8.GetString(json));

        // read later: what expired meanwhile is counted, not kept
        var later = LearnedSnapshot.Parse(json, Now.AddSeconds(20), MaxTimeout, 1024);
        Assert.Empty(later.Containers);
        Assert.Equal(1, later.Expired);
        Assert.Empty(later.Problems);
    }

    [Theory]
    [InlineData("", "not JSON")]
    [InlineData("{", "not JSON")]
    [InlineData("[]", "not version 1")]
    [InlineData("{\"version\":2,\"containers\":{}}", "not version 1")]
    [InlineData("{\"version\":\"1\",\"containers\":{}}", "not version 1")]
    [InlineData("{\"version\":1}", "no \"containers\"")]
    [InlineData("{\"version\":1,\"containers\":[]}", "no \"containers\"")]
    [InlineData("{\"version\":1,\"containers\":{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":1}}}}}}}}}", "not JSON")]
    public void A_file_that_is_not_what_WhaleWall_writes_is_ignored_whole(string json, string why)
    {
        var read = Parse(json);
        Assert.Empty(read.Containers);
        Assert.Contains(why, Assert.Single(read.Problems));
    }

    [Theory]
    [InlineData("\"abc\"", "{\"*.cdn.example.test\":{\"198.19.0.10\":\"E\"}}", "not a container ID")]
    [InlineData("\"" + A + "x\"", "{\"*.cdn.example.test\":{\"198.19.0.10\":\"E\"}}", "not a container ID")]
    [InlineData("\"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\"", "{\"*.cdn.example.test\":{\"198.19.0.10\":\"E\"}}", "not a container ID")]
    [InlineData("\"" + A + "\"", "[]", "not an object")]
    [InlineData("\"" + A + "\"", "{\"*\":{\"198.19.0.10\":\"E\"}}", "not a hosts entry")]
    [InlineData("\"" + A + "\"", "{\"a*.cdn.example.test\":{\"198.19.0.10\":\"E\"}}", "not a hosts entry")]
    [InlineData("\"" + A + "\"", "{\"API.example.test\":{\"198.19.0.10\":\"E\"}}", "not a hosts entry")]
    [InlineData("\"" + A + "\"", "{\"api.example.test.\":{\"198.19.0.10\":\"E\"}}", "not a hosts entry")]
    [InlineData("\"" + A + "\"", "{\"api..example.test\":{\"198.19.0.10\":\"E\"}}", "not a hosts entry")]
    [InlineData("\"" + A + "\"", "{\"api.example.test\":[\"198.19.0.10\"]}", "addresses are not an object")]
    [InlineData("\"" + A + "\"", "{\"api.example.test\":{\"198.19.0.0/15\":\"E\"}}", "not one the proxy learns")]
    [InlineData("\"" + A + "\"", "{\"api.example.test\":{\"127.0.0.1\":\"E\"}}", "not one the proxy learns")]
    [InlineData("\"" + A + "\"", "{\"api.example.test\":{\"0.0.0.0\":\"E\"}}", "not one the proxy learns")]
    [InlineData("\"" + A + "\"", "{\"api.example.test\":{\"224.0.0.1\":\"E\"}}", "not one the proxy learns")]
    [InlineData("\"" + A + "\"", "{\"api.example.test\":{\"::\":\"E\"}}", "not one the proxy learns")]
    [InlineData("\"" + A + "\"", "{\"api.example.test\":{\" 198.19.0.10\":\"E\"}}", "not one the proxy learns")]
    [InlineData("\"" + A + "\"", "{\"api.example.test\":{\"3323134986\":\"E\"}}", "not one the proxy learns")]
    [InlineData("\"" + A + "\"", "{\"api.example.test\":{\"198.19.0.10\":12345}}", "not a time")]
    [InlineData("\"" + A + "\"", "{\"api.example.test\":{\"198.19.0.10\":\"tomorrow\"}}", "not a time")]
    [InlineData("\"" + A + "\"", "{\"api.example.test\":{\"198.19.0.10\":\"FAR\"}}", "later than max TTL + grace")]
    public void Invalid_entries_are_dropped_and_said_while_valid_ones_stay(string id, string hosts, string why)
    {
        var expiry = Now.AddSeconds(60).ToString("O");
        var far = (Now + MaxTimeout).AddSeconds(1).ToString("O");
        var json = File($"{id}:{hosts.Replace("\"E\"", $"\"{expiry}\"").Replace("\"FAR\"", $"\"{far}\"")}, \"{B}\":{{\"*.ok.example.test\":{{\"198.19.0.20\":\"{expiry}\"}}}}");
        var read = Parse(json);
        Assert.Contains(read.Problems, p => p.Contains(why));
        var kept = Assert.Single(read.Containers);
        Assert.Equal(B, kept.Key);
        Assert.Equal(IPAddress.Parse("198.19.0.20"), Assert.Single(Assert.Single(kept.Value).Value).Key);
    }

    [Fact]
    public void At_most_the_per_container_cap_is_kept()
    {
        var expiry = Now.AddSeconds(60).ToString("O");
        var addresses = string.Join(",", Enumerable.Range(1, 10).Select(i => $"\"198.19.1.{i}\":\"{expiry}\""));
        var read = Parse(File($"\"{A}\":{{\"*.a.example.test\":{{{addresses}}},\"*.b.example.test\":{{{addresses}}}}}"), perContainer: 4);
        Assert.Equal(4, read.Containers[A].Values.Sum(a => a.Count));
        Assert.Contains(read.Problems, p => p.Contains("more than 4 addresses"));
    }

    [Fact]
    public void Hostile_files_are_refused_within_bounded_time()
    {
        var expiry = Now.AddSeconds(60).ToString("O");
        var cases = new List<byte[]>
        {
            new byte[LearnedSnapshot.MaxBytes + 1],                                                    // oversized
            Encoding.UTF8.GetBytes(new string('[', 100_000)),                                       // deep nesting
            Encoding.UTF8.GetBytes(File($"\"{A}\":{{\"{new string('a', 1_000_000)}.example.test\":{{\"198.19.0.10\":\"{expiry}\"}}}}")), // 1 MB name
            Encoding.UTF8.GetBytes(File(string.Join(",", Enumerable.Range(0, 100_001).Select(i => $"\"{i:x64}\":{{}}")))),              // too many containers
            Encoding.UTF8.GetBytes(File($"\"{A}\":{{\"api.example.test\":{{{string.Join(",", Enumerable.Range(0, 200_000).Select(i => $"\"198.19.{i / 250 % 250}.{i % 250 + 1}\":\"{expiry}\""))}}}}}")),
        };
        var random = new Random(15);
        for (var i = 0; i < 20; i++)
        {
            var garbage = new byte[random.Next(1, 100_000)];
            random.NextBytes(garbage);
            cases.Add(garbage);
        }
        foreach (var bytes in cases)
        {
            var watch = Stopwatch.StartNew();
            var read = LearnedSnapshot.Parse(bytes, Now, MaxTimeout, 1024);
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"{bytes.Length} bytes took {watch.Elapsed}");
            Assert.True(read.Containers.Values.All(c => c.Values.Sum(a => a.Count) <= 1024));
            Assert.True(read.Containers.IsEmpty || read.Problems.Length > 0);
        }
    }

    [Fact]
    public void Restored_addresses_count_against_the_proxys_cap_until_they_expire_or_are_learned_again()
    {
        var limits = LearningLimits.Default with { PerContainer = 3, PerName = 32 };
        var carried = new[] { "198.19.0.10", "198.19.0.11" }.Select(a => KeyValuePair.Create(IPAddress.Parse(a), Now.AddSeconds(30)));
        var state = LearnedAddresses.Restored(carried);
        Assert.Equal(2, state.Count(Now));

        // a new name may add only one more address: the cap is not doubled by the restart
        var (plan, next) = state.Learn(DnsName.Parse("x.example.test"), [(IPAddress.Parse("198.19.0.20"), 60u), (IPAddress.Parse("198.19.0.21"), 60u)], limits, Now);
        Assert.Equal([IPAddress.Parse("198.19.0.20")], plan.Commit.Select(c => c.Address));
        Assert.Equal([IPAddress.Parse("198.19.0.21")], plan.RefusedByCap.AsEnumerable());
        Assert.Equal(3, next.Count(Now));

        // a carried address learned again moves under its name: still counted once
        (plan, next) = next.Learn(DnsName.Parse("y.example.test"), [(IPAddress.Parse("198.19.0.10"), 60u)], limits, Now);
        Assert.Single(plan.Commit);
        Assert.Empty(plan.RefusedByCap);
        Assert.Equal(3, next.Count(Now));
        Assert.Single(next.Carried);

        // once the carried ones expire, the room is back
        Assert.Equal(2, next.Count(Now.AddSeconds(31)));
        (plan, _) = next.Learn(DnsName.Parse("z.example.test"), [(IPAddress.Parse("198.19.0.30"), 60u)], limits, Now.AddSeconds(31));
        Assert.Single(plan.Commit);
    }
}
