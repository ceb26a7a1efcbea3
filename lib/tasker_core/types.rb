# frozen_string_literal: true

require "dry-types"
require "dry-struct"

module TaskerCore
  # The one dry-types container of the gem: TaskerCore::Types::Strict::String and the rest. Typed
  # responses live in modules under it (TaskerCore::Types::ClientTypes).
  Types = Dry.Types()
end
