namespace WhaleWall.Actors.Containers;

public static class ContainerCommands
{
    /// <summary>Something happened to the container: look at it again. <paramref name="Event"/>
    /// is the Docker event behind it, if any.</summary>
    public sealed record Refresh(string Reason, Docker.DockerEvent? Event = null);
}

public static class ContainerEvents
{
    /// <summary>The container no longer exists and its rules were removed.</summary>
    public sealed record Gone(string Id);
}
