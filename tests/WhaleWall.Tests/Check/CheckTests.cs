using WhaleWall.Firewall.Check;
using WhaleWall.Firewall.Policy;
using Xunit;

namespace WhaleWall.Tests.Check;

public class CheckTests
{
    private const string Compose = """
        name: shop
        services:
          web:
            ports: ["18080:8080", "127.0.0.1:5353:53/udp", { target: 9000, published: 19000 }]
            labels:
              whalewall.enabled: "true"
              whalewall.rules: |
                output:
                  - container: db
                    proto: tcp
                    dst_ports: [5432]
          db:
            labels:
              - whalewall.enabled=true
              - other=x=y
          broken:
            labels:
              whalewall.enabled: "true"
              whalewall.rules: |
                output:
                  - ips: [10.0.0.1/8]
        """;

    [Fact]
    public void Compose_labels_in_map_and_list_form_and_ports_are_read()
    {
        var result = ComposeFile.Parse(Compose, "dir");
        Assert.Null(result.Error);
        Assert.Equal("shop", result.Project);
        var web = result.Services.Single(s => s.Name == "web");
        Assert.Equal([(8080, L4Proto.Tcp, 18080), (53, L4Proto.Udp, 5353), (9000, L4Proto.Tcp, 19000)],
            web.Ports.Select(p => ((int)p.ContainerPort, p.Proto, (int)p.HostPort)));
        var db = result.Services.Single(s => s.Name == "db");
        Assert.Equal("true", db.Labels["whalewall.enabled"]);
        Assert.Equal("x=y", db.Labels["other"]);
        Assert.Equal("shop", db.Labels[ContainerFacts.ComposeProjectLabel]);
    }

    [Fact]
    public void Report_names_each_invalid_service_with_label_path_line_and_reason()
    {
        var report = CheckReport.For(ComposeFile.Parse(Compose, "dir").Services, printNft: false);
        Assert.False(report.Valid);
        Assert.Contains("web: ok (1 output rules", report.Text);
        Assert.Contains("broken: INVALID, would be drop-all:", report.Text);
        Assert.Contains("whalewall.rules: output[0].ips[0] (line 2): \"10.0.0.1/8\" has host bits set; did you mean 10.0.0.0/8?", report.Text);
    }

    [Fact]
    public void Print_nft_shows_the_compiled_elements_including_compose_service_references()
    {
        var services = ComposeFile.Parse(Compose, "dir").Services.Where(s => s.Name != "broken").ToList();
        var report = CheckReport.For(services, printNft: true);
        Assert.True(report.Valid);
        Assert.Contains("element peer4 198.18.255.2 . 198.18.255.3 . 6 . 0-65535 . 5432", report.Text);
    }

    [Fact]
    public void Not_a_compose_file_is_an_error() =>
        Assert.NotNull(ComposeFile.Parse("- a\n- b\n", "dir").Error);

    [Fact]
    public void Merge_keys_apply_as_in_docker_compose()
    {
        var result = ComposeFile.Parse("""
            x-firewalled: &firewalled
              labels: &labels
                whalewall.enabled: "true"
                whalewall.rules: "output: []"
              ports: [{ target: 8080, published: 18080 }]
            x-more: &more { team: a }
            services:
              web:
                <<: *firewalled
              api:
                <<: *firewalled
                labels:
                  <<: [*labels, *more]
                  team: b
              literal:
                labels:
                  "<<": not a merge
            """, "dir");
        Assert.Null(result.Error);
        var web = result.Services.Single(s => s.Name == "web");
        Assert.Equal("true", web.Labels["whalewall.enabled"]);
        Assert.Equal(8080, Assert.Single(web.Ports).ContainerPort);
        var api = result.Services.Single(s => s.Name == "api");
        Assert.Equal(("true", "b"), (api.Labels["whalewall.enabled"], api.Labels["team"]));
        Assert.Equal("not a merge", result.Services.Single(s => s.Name == "literal").Labels["<<"]);
        Assert.True(CheckReport.For([web], printNft: false).Valid);
    }

    [Theory]
    [InlineData("services:\n  web:\n    labels:\n      ? [a]\n      : b\n", "line 4: a list or mapping cannot be a mapping key")]
    [InlineData("x: &a [1]\nservices:\n  web:\n    labels:\n      *a : b\n", "line 5: an alias (`*a`) cannot be a mapping key")]
    public void A_compose_file_the_loader_refuses_is_an_error_not_a_crash(string yaml, string error) =>
        Assert.Equal(error, ComposeFile.Parse(yaml, "dir").Error);
}
