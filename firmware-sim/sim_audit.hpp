// telegate-sim's Kafka-side modes: the exactly-once audit of an acknowledgement log, and the
// partition leaders of a topic (which broker a fault test should kill). Both run once on the
// main thread and return the process exit code.
#pragma once

#include <boost/program_options/variables_map.hpp>

namespace telegate::sim {

// `audit --bootstrap B --topic T --ack-log FILE [--prefix P]`: prints
// {acknowledged, found, lost, duplicated, unacknowledged_found, messages}; exit code 1 when
// lost or duplicated > 0.
int audit(const boost::program_options::variables_map& options);

// `leaders --bootstrap B --topic T`: one line per partition, "<partition> <leader node id>".
int leaders(const boost::program_options::variables_map& options);

}  // namespace telegate::sim
