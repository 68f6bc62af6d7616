// Runs the protocol checker on a configuration given on the command line, e.g.
//   protocol_model_main 3 2 2 0        (nodes pages ops_per_node evictions_per_node)
//   protocol_model_main 8 16 40 4 random 100   (random walks: seed 1, 100 walks)
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "directory/protocol_model.h"

int main(int argc, char** argv) {
  amalgam::directory::ModelConfig c;
  if (argc > 1) c.nodes = std::atoi(argv[1]);
  if (argc > 2) c.pages = std::atoi(argv[2]);
  if (argc > 3) c.ops_per_node = std::atoi(argv[3]);
  if (argc > 4) c.evictions_per_node = std::atoi(argv[4]);
  if (std::getenv("NO_REDUCTION")) c.reduce_invisible_steps = false;
  amalgam::directory::CheckResult r;
  if (argc > 6 && std::strcmp(argv[5], "random") == 0) {
    r = amalgam::directory::RandomWalks(c, 1, std::atoi(argv[6]));
  } else {
    r = amalgam::directory::ExploreAll(c);
  }
  std::printf("%s", amalgam::directory::Summarize(r).c_str());
  return r.ok && !r.truncated ? 0 : 1;
}
