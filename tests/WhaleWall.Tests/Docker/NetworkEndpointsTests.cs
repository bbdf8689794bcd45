using System.Collections.Immutable;
using System.Net;
using WhaleWall.Actors.Docker;
using WhaleWall.Firewall.Policy;
using Xunit;

namespace WhaleWall.Tests.Docker;

/// <summary>Network inspects shared between the containers on a network: an answer serves a
/// container when it was asked for after the container's previous event and lists it, or when it
/// was asked for after the lookup began; at most one request per network is in flight. The
/// clock is a counter the test moves; Docker is a queue of answers the test releases.</summary>
public class NetworkEndpointsTests
{
    private long now = 100;
    private readonly List<(string Network, TaskCompletionSource<NetworkView?> Answer)> asked = new();

    private NetworkEndpoints Endpoints(TimeSpan? timeout = null) => new((network, _) =>
    {
        var answer = new TaskCompletionSource<NetworkView?>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (asked) asked.Add((network, answer));
        return answer.Task;
    }, () => now, timeout);

    private static NetworkView View(params (string Container, string Address)[] endpoints) => new("net-id",
        endpoints.ToImmutableDictionary(e => e.Container, e => new NetworkAttachment("net", "net-id", IPAddress.Parse(e.Address), null)));

    private static async Task<string?> Address(Task<NetworkAttachment?> lookup) =>
        (await lookup.WaitAsync(TimeSpan.FromSeconds(5)))?.IPv4?.ToString();

    [Fact]
    public async Task An_answer_asked_for_after_the_containers_previous_event_serves_it_without_a_call()
    {
        var endpoints = Endpoints();
        var first = endpoints.FindAsync("net-id", "a", sentAfter: 50, default);   // sent at 100
        asked[0].Answer.SetResult(View(("a", "198.18.0.2"), ("b", "198.18.0.3")));
        Assert.Equal("198.18.0.2", await Address(first));

        now = 120;
        Assert.Equal("198.18.0.3", await Address(endpoints.FindAsync("net-id", "b", sentAfter: 90, default)));
        Assert.Single(asked);
    }

    [Fact]
    public async Task An_answer_asked_for_before_the_containers_previous_event_is_never_used()
    {
        // b was on the network with .3, then disconnected (received at 150) and connected again with .9:
        // the answer sent at 100 still lists the old endpoint, whose address may be another container's now
        var endpoints = Endpoints();
        var first = endpoints.FindAsync("net-id", "a", sentAfter: 50, default);
        asked[0].Answer.SetResult(View(("a", "198.18.0.2"), ("b", "198.18.0.3")));
        await first;

        now = 200;
        var b = endpoints.FindAsync("net-id", "b", sentAfter: 150, default);
        Assert.Equal(2, asked.Count);
        asked[1].Answer.SetResult(View(("a", "198.18.0.2"), ("b", "198.18.0.9")));
        Assert.Equal("198.18.0.9", await Address(b));
    }

    [Fact]
    public async Task An_answer_that_does_not_list_the_container_leaves_the_decision_to_its_own_request()
    {
        var endpoints = Endpoints();
        var first = endpoints.FindAsync("net-id", "a", sentAfter: 50, default);
        asked[0].Answer.SetResult(View(("a", "198.18.0.2")));
        await first;

        now = 120;
        var b = endpoints.FindAsync("net-id", "b", sentAfter: 90, default);
        Assert.Equal(2, asked.Count);
        asked[1].Answer.SetResult(View(("a", "198.18.0.2")));
        Assert.Null(await Address(b)); // not on the network now: nothing to program
    }

    [Fact]
    public async Task A_request_in_flight_serves_a_later_container_without_another_call()
    {
        var endpoints = Endpoints();
        var a = endpoints.FindAsync("net-id", "a", sentAfter: 50, default); // sent at 100, still on its way
        now = 110;
        var b = endpoints.FindAsync("net-id", "b", sentAfter: 90, default); // sent after b's previous event
        Assert.Single(asked);
        asked[0].Answer.SetResult(View(("a", "198.18.0.2"), ("b", "198.18.0.3")));
        Assert.Equal("198.18.0.2", await Address(a));
        Assert.Equal("198.18.0.3", await Address(b));
        Assert.Single(asked);
    }

    [Fact]
    public async Task Lookups_the_request_in_flight_cannot_decide_share_one_next_request_sent_when_it_answers()
    {
        // b, c and d each had an event (a disconnect) after the request in flight left: its answer
        // may list their old endpoints, so one request sent after it answers decides for all three
        var endpoints = Endpoints();
        var a = endpoints.FindAsync("net-id", "a", sentAfter: 50, default);
        now = 150;
        var later = new[] { "b", "c", "d" }.Select(c => endpoints.FindAsync("net-id", c, sentAfter: 120, default)).ToList();
        Assert.Single(asked);

        asked[0].Answer.SetResult(View(("a", "198.18.0.2"), ("b", "198.18.0.3"), ("c", "198.18.0.4"), ("d", "198.18.0.5")));
        Assert.Equal("198.18.0.2", await Address(a));
        await WaitForCalls(2);
        Assert.All(later, l => Assert.False(l.IsCompleted));

        asked[1].Answer.SetResult(View(("a", "198.18.0.2"), ("b", "198.18.0.7"), ("c", "198.18.0.8")));
        Assert.Equal(new string?[] { "198.18.0.7", "198.18.0.8", null }, await Task.WhenAll(later.Select(Address)));
        Assert.Equal(2, asked.Count);
    }

    [Fact]
    public async Task A_container_the_request_in_flight_does_not_list_waits_for_the_next()
    {
        var endpoints = Endpoints();
        _ = endpoints.FindAsync("net-id", "a", sentAfter: 50, default);   // sent at 100
        now = 110;
        var b = endpoints.FindAsync("net-id", "b", sentAfter: 90, default); // b's endpoint may be newer than that request
        asked[0].Answer.SetResult(View(("a", "198.18.0.2")));
        await WaitForCalls(2);
        Assert.False(b.IsCompleted);
        asked[1].Answer.SetResult(View(("a", "198.18.0.2"), ("b", "198.18.0.3")));
        Assert.Equal("198.18.0.3", await Address(b));
    }

    [Fact]
    public async Task A_failed_request_fails_the_lookup_it_decides_and_the_others_go_on_to_the_next()
    {
        var endpoints = Endpoints();
        var a = endpoints.FindAsync("net-id", "a", sentAfter: 50, default);
        now = 110;
        var b = endpoints.FindAsync("net-id", "b", sentAfter: 90, default);
        asked[0].Answer.SetException(new HttpRequestException("dockerd went away"));
        await Assert.ThrowsAsync<HttpRequestException>(() => a.WaitAsync(TimeSpan.FromSeconds(5)));
        await WaitForCalls(2);
        asked[1].Answer.SetResult(View(("b", "198.18.0.3")));
        Assert.Equal("198.18.0.3", await Address(b));
    }

    [Fact]
    public async Task A_request_that_does_not_answer_in_time_fails_its_lookups_and_makes_way()
    {
        var endpoints = Endpoints(timeout: TimeSpan.FromMilliseconds(200));
        var a = endpoints.FindAsync("net-id", "a", sentAfter: 50, default); // never answered
        await Assert.ThrowsAsync<TimeoutException>(() => a.WaitAsync(TimeSpan.FromSeconds(5)));

        now = 120;
        var b = endpoints.FindAsync("net-id", "b", sentAfter: 110, default);
        Assert.Equal(2, asked.Count);
        asked[1].Answer.SetResult(View(("b", "198.18.0.3")));
        Assert.Equal("198.18.0.3", await Address(b));
    }

    private async Task WaitForCalls(int count)
    {
        var until = DateTime.UtcNow.AddSeconds(5);
        while (true)
        {
            lock (asked) if (asked.Count >= count) return;
            Assert.True(DateTime.UtcNow < until, $"{count} requests expected, {asked.Count} sent");
            await Task.Delay(5);
        }
    }

    [Fact]
    public async Task Nothing_asked_before_the_stream_reconnected_or_the_network_was_destroyed_is_shared()
    {
        var endpoints = Endpoints();
        var first = endpoints.FindAsync("net-id", "a", sentAfter: 50, default);
        asked[0].Answer.SetResult(View(("a", "198.18.0.2"), ("b", "198.18.0.3")));
        await first;

        endpoints.ForgetAll();
        now = 120;
        _ = endpoints.FindAsync("net-id", "b", sentAfter: 90, default);
        Assert.Equal(2, asked.Count);
        asked[1].Answer.SetResult(View(("b", "198.18.0.3")));

        endpoints.Forget("net-id");
        now = 130;
        _ = endpoints.FindAsync("net-id", "b", sentAfter: 90, default);
        Assert.Equal(3, asked.Count);
        asked[2].Answer.SetResult(null);
    }

    [Fact]
    public async Task A_request_sent_before_a_reconnect_is_not_shared_after_it()
    {
        var endpoints = Endpoints();
        var first = endpoints.FindAsync("net-id", "a", sentAfter: 50, default); // in flight across the reconnect
        endpoints.ForgetAll();
        now = 120;
        var b = endpoints.FindAsync("net-id", "b", sentAfter: 90, default);
        Assert.Single(asked); // b waits for the next request, sent when this one answers
        asked[0].Answer.SetResult(View(("a", "198.18.0.2"), ("b", "198.18.0.3")));
        await first;
        await WaitForCalls(2);
        Assert.False(b.IsCompleted);
        asked[1].Answer.SetResult(View(("b", "198.18.0.4")));
        Assert.Equal("198.18.0.4", await Address(b));
    }
}
