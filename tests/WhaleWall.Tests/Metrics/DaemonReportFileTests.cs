using System.Collections.Immutable;
using System.Text.Json.Nodes;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Metrics;
using Xunit;

namespace WhaleWall.Tests.Metrics;

/// <summary>The report file as the daemon writes it: the same content as <see cref="DaemonReportFile.ToJson"/>,
/// and a rewrite with nothing changed serializes no container again.</summary>
public sealed class DaemonReportFileTests
{
    private static readonly DateTimeOffset At = DateTimeOffset.Parse("2026-12-02T12:00:00Z");
    private static readonly DaemonIdentity Identity = new(4242, At.AddMinutes(-1), "n1", "whalewall", "test");

    private static DaemonView ViewOf(int containers)
    {
        var view = new DaemonView();
        view.Update(s => s with
        {
            TableReady = true,
            Containers = Enumerable.Range(0, containers).Select(i => Facts.Container($"c{i:D4}", $"198.18.{150 + i / 250}.{i % 250 + 2}") with { Id = $"c{i:D4}" })
                .ToImmutableDictionary(f => f.Id, f => new ContainerEntry(f.Id, f, ContainerState.Enforced)),
        });
        return view;
    }

    private static Dictionary<string, ImmutableArray<LearnedName>> Learned(DateTimeOffset expires) =>
        new() { ["c0001"] = [new LearnedName("api.example.test", "198.19.0.7", expires)] };

    [Fact]
    public void The_file_holds_what_ToJson_says_and_a_changed_container_or_learned_name_is_written_anew()
    {
        var dir = Directory.CreateTempSubdirectory("ww-report-").FullName;
        try
        {
            var view = ViewOf(3);
            var learned = Learned(At.AddMinutes(5));
            var file = new DaemonReportFile(Path.Combine(dir, DaemonReportFile.FileName), Identity, _ => learned);
            void AssertFileIsToJson()
            {
                var expected = DaemonReportFile.ToJson(view.Current, Identity, At, learned);
                var actual = DaemonReportFile.Read(file.Path);
                Assert.True(JsonNode.DeepEquals(expected, actual), $"file:\n{actual}\nToJson:\n{expected}");
            }

            file.Write(view.Current, At);
            AssertFileIsToJson();

            // a container changes state, another's learned name is renewed: both show, the rest stays
            view.Update(s => s with { Containers = s.Containers.SetItem("c0002", s.Containers["c0002"] with { State = ContainerState.Rejected, Reasons = ["kernel: no"] }) });
            learned = Learned(At.AddMinutes(9));
            file.Write(view.Current, At);
            AssertFileIsToJson();
            var json = DaemonReportFile.Read(file.Path)!;
            Assert.Equal("rejected", json["containers"]![2]!["state"]!.GetValue<string>());
            Assert.Equal(At.AddMinutes(9).ToString("O"), json["containers"]![1]!["dns_learned"]![0]!["expires"]!.GetValue<string>());
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Rewriting_an_unchanged_report_of_1000_containers_allocates_a_fraction_of_the_first_write()
    {
        var dir = Directory.CreateTempSubdirectory("ww-report-").FullName;
        try
        {
            var view = ViewOf(1000);
            var file = new DaemonReportFile(Path.Combine(dir, DaemonReportFile.FileName), Identity);
            long Allocated(Action write)
            {
                var before = GC.GetAllocatedBytesForCurrentThread();
                write();
                return GC.GetAllocatedBytesForCurrentThread() - before;
            }

            var first = Allocated(() => file.Write(view.Current, At));
            var again = Allocated(() => file.Write(view.Current, At.AddSeconds(5)));
            Assert.True(again * 5 < first, $"first write allocated {first / 1024} KB, the unchanged rewrite {again / 1024} KB");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
